//! `blink cat`: print a topic's records, or a Hindsight stream file's messages.
//!
//! The log is opened read-only, so `cat` works beside a running `blink run` and never repairs or
//! changes anything; with `--follow` it keeps printing what the writer appends.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use blink::log::{self, Log, PartitionReader};
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
}

/// Counts what could not be shown, so the exit status tells a script something was wrong.
#[derive(Default)]
struct Outcome {
    printed: u64,
    bad: u64,
}

pub fn cat(args: CatArgs) -> anyhow::Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = match &args.hindsight {
        Some(file) => cat_hindsight(file, args.json, args.count, &mut out),
        None => cat_topic(&args, &mut out),
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
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let mut outcome = Outcome::default();
    for frame in StreamReader::new(&bytes) {
        match frame {
            Ok((_, message)) => {
                if !count_only {
                    let view = MessageView::parse(message).expect("the stream reader validated it");
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
    // else on stderr with a blank line after it. Every message matches: there is no matcher.
    let summary = format!("Processed: {0}, matched: {0} messages", outcome.printed);
    if count_only {
        writeln!(out, "{summary}")?;
    } else {
        eprintln!("{summary}\n");
    }
    Ok(outcome)
}

fn cat_topic(args: &CatArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let topic = args
        .topic
        .as_deref()
        .expect("clap requires a topic without --hindsight");
    let config = super::config_file::load_config(args.config.as_deref())?;
    if !config.output_path.is_dir() {
        bail!(
            "no log at {} (output_path of {}): has `blink run` been started?",
            config.output_path.display(),
            config.source.display()
        );
    }
    let log = Log::open_read_only(config.log())
        .with_context(|| format!("opening the log in {}", config.output_path.display()))?;
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
            drain(reader, heka, args.json, out, &mut outcome)?;
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
    out: &mut impl Write,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let id = reader.partition().id();
    while let Some(record) = reader.next_record()? {
        let value = record.value.as_deref().unwrap_or_default();
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
