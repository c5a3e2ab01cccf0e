//! `blink cat`: print a topic's records, or a Hindsight stream file's messages, all of them or
//! those a message matcher accepts (`--match`: how a detection's matcher is tried on stored data
//! before it is deployed).
//!
//! The log is opened read-only, so `cat` works beside a running `blink run` and never repairs or
//! changes anything; with `--follow` it keeps printing what the writer appends.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use blink::log::{self, PartitionReader};
use blink::matcher::Matcher;
use blink::message::MessageView;
use blink::message::stream::StreamReader;

use super::render;

#[derive(clap::Args)]
pub struct CatArgs {
    /// Topic to print: blink.input, blink.analysis or any other topic.
    #[arg(required_unless_present = "hindsight", conflicts_with = "hindsight")]
    topic: Option<String>,
    /// Print a Hindsight stream file instead of a topic.
    #[arg(long, value_name = "FILE")]
    hindsight: Option<PathBuf>,
    /// Global config (TOML); defaults to cfg/blink.toml when it exists.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Only this partition (default: all of them, one after the other).
    #[arg(long)]
    partition: Option<u32>,
    /// First offset to print (default: the oldest retained).
    #[arg(long, value_name = "OFFSET", allow_negative_numbers = true)]
    from: Option<i64>,
    /// Keep waiting for new records.
    #[arg(long)]
    follow: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// With --hindsight: print only the summary line, on stdout (lsb_heka_cat -c).
    #[arg(long, requires = "hindsight")]
    count: bool,
    /// Print only the messages this message matcher accepts (as a plugin's `message_matcher`);
    /// records of a plain topic that are not Heka messages never match.
    #[arg(long = "match", value_name = "EXPR")]
    matcher: Option<String>,
}

/// Counts what could not be shown, so the exit status tells a script something was wrong.
#[derive(Default)]
struct Outcome {
    printed: u64,
    bad: u64,
    /// With `--match`: messages the matcher turned down, and plain records that are not
    /// messages at all.
    unmatched: u64,
    not_messages: u64,
}

/// Whether `view` is to be printed under `matcher`; counts it if not.
fn accepted(matcher: Option<&Matcher>, view: &MessageView, outcome: &mut Outcome) -> bool {
    let ok = matcher.is_none_or(|m| m.matches(view));
    if !ok {
        outcome.unmatched += 1;
    }
    ok
}

pub fn cat(args: CatArgs) -> anyhow::Result<ExitCode> {
    let matcher = match &args.matcher {
        Some(expression) => Some(
            Matcher::new(expression)
                .with_context(|| format!("--match {expression:?} is not a message matcher"))?,
        ),
        None => None,
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = match &args.hindsight {
        Some(file) => cat_hindsight(file, args.json, args.count, matcher.as_ref(), &mut out),
        None => cat_topic(&args, matcher.as_ref(), &mut out),
    };
    let flushed = out.flush();
    let outcome = match result {
        Err(e) if is_broken_pipe(&e) => return Ok(ExitCode::SUCCESS),
        other => other?,
    };
    match flushed {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        other => other?,
    }
    if let Some(expression) = &args.matcher
        && args.hindsight.is_none()
    {
        let not_messages = match outcome.not_messages {
            0 => String::new(),
            n => format!(", {n} records that are not Heka messages"),
        };
        eprintln!(
            "blink cat: {} matched {expression:?}, {} did not{not_messages}",
            outcome.printed, outcome.unmatched
        );
    }
    if outcome.bad > 0 {
        eprintln!(
            "blink cat: {} printed, {} could not be read (see above)",
            outcome.printed, outcome.bad
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn write_message(
    out: &mut impl Write,
    m: &MessageView,
    json: bool,
    offset: Option<i64>,
) -> io::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, &render::message_json(m))?;
        writeln!(out)
    } else {
        if let Some(offset) = offset {
            writeln!(out, ":Offset: {offset}")?;
        }
        out.write_all(render::message_text(m).as_bytes())
    }
}

fn cat_hindsight(
    file: &PathBuf,
    json: bool,
    count_only: bool,
    matcher: Option<&Matcher>,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let mut outcome = Outcome::default();
    for frame in StreamReader::new(&bytes) {
        match frame {
            Ok((_, message)) => {
                let view = MessageView::parse(message).expect("the stream reader validated it");
                if !accepted(matcher, &view, &mut outcome) {
                    continue;
                }
                if !count_only {
                    write_message(out, &view, json, None)?;
                }
                outcome.printed += 1;
            }
            Err(e) => {
                eprintln!("blink cat: {}: {e}", file.display());
                outcome.bad += 1;
            }
        }
    }
    // lsb_heka_cat's summary, where it puts it: on stdout when it is all that is printed (-c),
    // else on stderr with a blank line after it.
    let summary = format!(
        "Processed: {}, matched: {} messages",
        outcome.printed + outcome.unmatched,
        outcome.printed
    );
    if count_only {
        writeln!(out, "{summary}")?;
    } else {
        eprintln!("{summary}\n");
    }
    Ok(outcome)
}

fn cat_topic(
    args: &CatArgs,
    matcher: Option<&Matcher>,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let topic = args
        .topic
        .as_deref()
        .expect("clap requires a topic without --hindsight");
    let config = super::config_file::load_config(args.config.as_deref())?;
    let log = super::config_file::open_log_read_only(&config)?;
    let Some(partitions) = log.partitions(topic) else {
        let known: Vec<String> = log.topics().into_iter().map(|(name, _)| name).collect();
        bail!("unknown topic {topic:?}; the log has: {}", known.join(", "));
    };
    let selected: Vec<_> = match args.partition {
        Some(id) => vec![partitions.get(id as usize).cloned().with_context(|| {
            format!(
                "{topic} has {} partition(s); there is no partition {id}",
                partitions.len()
            )
        })?],
        None => partitions,
    };
    let mut readers = Vec::with_capacity(selected.len());
    for p in selected {
        let (start, end) = (p.log_start(), p.next_offset());
        let from = args.from.unwrap_or(start);
        let name = format!("{topic}-{}", p.id());
        if from < start || (from > end && !args.follow) {
            let holds = if end > start {
                format!("holds offsets {start} to {}", end - 1)
            } else {
                "holds no records".to_owned()
            };
            bail!(
                "--from {from} is out of range: {name} {holds}; the next record written will be \
                 offset {end}{}",
                if from > end {
                    " (--follow waits for it)"
                } else {
                    ""
                }
            );
        }
        if from > end {
            eprintln!("blink cat: {name} ends at offset {end}; waiting for offset {from}");
        }
        readers.push(PartitionReader::new(p, from));
    }
    let heka = log::is_queue(topic);
    let mut outcome = Outcome::default();
    loop {
        for reader in &mut readers {
            drain(reader, heka, args.json, matcher, out, &mut outcome)?;
        }
        if !args.follow {
            return Ok(outcome);
        }
        out.flush()?;
        // Wait on each partition in turn, briefly, so every one is followed.
        let wait = Duration::from_millis(if readers.len() == 1 { 500 } else { 50 });
        for reader in &readers {
            if reader.wait(wait)? {
                break;
            }
        }
    }
}

fn drain(
    reader: &mut PartitionReader,
    heka: bool,
    json: bool,
    matcher: Option<&Matcher>,
    out: &mut impl Write,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let id = reader.partition().id();
    while let Some(record) = reader.next_record()? {
        let value = record.value.as_deref().unwrap_or_default();
        if !heka && matcher.is_some() {
            // A plain topic under a matcher: its records that are Heka messages (a topic a
            // Kafka output forwards them to) are matched; the others cannot be.
            match MessageView::parse(value) {
                Ok(view) if accepted(matcher, &view, outcome) => {
                    write_message(out, &view, json, Some(record.offset))?;
                    outcome.printed += 1;
                }
                Ok(_) => {}
                Err(_) => outcome.not_messages += 1,
            }
            continue;
        }
        if !heka {
            if json {
                serde_json::to_writer(&mut *out, &render::record_json(id, &record))?;
                writeln!(out)?;
            } else {
                out.write_all(render::record_text(id, &record).as_bytes())?;
            }
            outcome.printed += 1;
            continue;
        }
        match MessageView::parse(value) {
            Ok(view) => {
                if !accepted(matcher, &view, outcome) {
                    continue;
                }
                write_message(out, &view, json, Some(record.offset))?;
                outcome.printed += 1;
            }
            Err(e) => {
                eprintln!(
                    "blink cat: {}-{id} offset {}: {e}",
                    reader.partition().topic(),
                    record.offset
                );
                outcome.bad += 1;
            }
        }
    }
    Ok(())
}
