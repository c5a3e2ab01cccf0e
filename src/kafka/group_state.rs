//! One consumer group's state machine (the classic group protocol), with no locks, no clocks
//! and no channels: every call is given the time, and what members waiting in JoinGroup or
//! SyncGroup must be told comes back as [`Answer`]s for the coordinator
//! ([`super::coordinator`]) to deliver.
//!
//! A rebalance starts when a member joins, leaves, or misses its session timeout. Members learn
//! of it from their heartbeats (REBALANCE_IN_PROGRESS) and join again; the join completes when
//! every member has rejoined or the longest rebalance timeout has passed (members that did not
//! rejoin are dropped). Then the leader gets every member's metadata, runs the client-side
//! assignor (range, roundrobin, sticky, cooperative-sticky: Blink does not look inside), and
//! hands the assignments back through SyncGroup.
//!
//! Static members (KIP-345: a `group.instance.id`) keep their place across restarts: one that
//! joins again under its instance id takes over its old member's assignment — in a stable group
//! without a rebalance — and the member it replaced is fenced (FENCED_INSTANCE_ID) from then on.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::codes;

/// What a JoinGroup gets back.
#[derive(Debug, Clone)]
pub struct Joined {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub leader: String,
    pub member_id: String,
    /// For the leader: every member with its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl Joined {
    pub fn error(error: i16, member_id: &str) -> Self {
        Joined {
            error,
            generation: -1,
            protocol_type: String::new(),
            protocol: String::new(),
            leader: String::new(),
            member_id: member_id.to_owned(),
            members: Vec::new(),
        }
    }
}

/// A member as SyncGroup, Heartbeat, LeaveGroup and OffsetCommit name it: its member id and,
/// for a static member, its `group.instance.id`.
#[derive(Debug, Clone, Copy)]
pub struct MemberRef<'a> {
    pub id: &'a str,
    pub instance: Option<&'a str>,
}

impl<'a> MemberRef<'a> {
    /// A dynamic member (no instance id).
    pub fn dynamic(id: &'a str) -> Self {
        MemberRef { id, instance: None }
    }
}

/// What a SyncGroup gets back: an error code, and the member's assignment.
pub type Synced = (i16, Bytes);

/// A JoinGroup, as the coordinator needs it.
pub struct JoinRequest {
    pub group: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a member with no id is given one and asked to join again with it.
    pub require_member_id: bool,
}

/// What a member waiting in JoinGroup or SyncGroup is to be told.
#[derive(Debug)]
pub enum Answer {
    Join(String, Joined),
    Sync(String, Synced),
}

/// How a JoinGroup or SyncGroup call goes on: answered now, or waiting for an [`Answer`].
#[derive(Debug)]
pub enum Outcome<T> {
    Now(T),
    Waits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

pub struct Member {
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    last_seen: Instant,
    pub assignment: Bytes,
    /// Waiting in JoinGroup / SyncGroup for an [`Answer`].
    joining: bool,
    syncing: bool,
}

impl Member {
    /// The metadata this member sent for `protocol` (empty if it did not offer it).
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }
}

pub struct Group {
    pub state: State,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: Option<String>,
    leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Static members: `group.instance.id` → the member id that holds it now.
    instances: HashMap<String, String>,
    /// When a rebalance in progress gives up on members that have not rejoined.
    deadline: Option<Instant>,
    /// A group's first rebalance waits until then for more members (Kafka's
    /// `group.initial.rebalance.delay.ms`), so consumers started together share one generation
    /// instead of rebalancing once per arrival.
    initial_until: Option<Instant>,
    /// The initial wait is extended by each new member, but never past this.
    initial_limit: Option<Instant>,
}

impl Default for Group {
    fn default() -> Self {
        Self::new()
    }
}

impl Group {
    pub fn new() -> Self {
        Group {
            state: State::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            instances: HashMap::new(),
            deadline: None,
            initial_until: None,
            initial_limit: None,
        }
    }

    /// The member holding static instance `instance`, if any.
    pub fn instance_holder(&self, instance: &str) -> Option<&String> {
        self.instances.get(instance)
    }

    /// JoinGroup of `member_id` (already given one by the coordinator if it had none);
    /// `replaces` is the member a restarted static member takes over. The new group's first
    /// rebalance waits `initial_delay` for more members.
    pub fn join(
        &mut self,
        member_id: &str,
        replaces: Option<&str>,
        request: &JoinRequest,
        initial_delay: Duration,
        now: Instant,
        answers: &mut Vec<Answer>,
    ) -> Outcome<Joined> {
        // A member id Blink does not know (handed out by MEMBER_ID_REQUIRED, or from before
        // a restart) joins as a new member.
        if self.state != State::Empty && self.protocol_type != request.protocol_type {
            return Outcome::Now(Joined::error(codes::INCONSISTENT_GROUP_PROTOCOL, member_id));
        }
        let others_share = self
            .members
            .iter()
            .filter(|(id, _)| id.as_str() != member_id && Some(id.as_str()) != replaces)
            .all(|(_, m)| {
                m.protocols
                    .iter()
                    .any(|(n, _)| request.protocols.iter().any(|(r, _)| r == n))
            });
        if !others_share {
            return Outcome::Now(Joined::error(codes::INCONSISTENT_GROUP_PROTOCOL, member_id));
        }
        if self.state == State::Empty {
            self.protocol_type = request.protocol_type.clone();
        }
        if let Some(old_id) = replaces {
            let previous_leader =
                self.replace_static_member(old_id, member_id, request, now, answers);
            tracing::debug!(group = %request.group, old = %old_id, new = %member_id, "kafka: static member rejoins");
            // In a stable group whose protocol stays, the returning member takes up its old
            // assignment (through SyncGroup) and nobody rebalances. The leader named is the
            // one before the change, so a returning leader does not assign again: a stable
            // group would not pass its new assignments on.
            if self.state == State::Stable && self.protocol == self.choose_protocol() {
                return Outcome::Now(Joined {
                    error: codes::NONE,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol: self.protocol.clone().unwrap_or_default(),
                    leader: previous_leader.unwrap_or_default(),
                    member_id: member_id.to_owned(),
                    members: Vec::new(),
                });
            }
        }
        match self.members.get_mut(member_id) {
            Some(member) => {
                member.protocols = request.protocols.clone();
                member.session_timeout = request.session_timeout;
                member.rebalance_timeout = request.rebalance_timeout;
                member.last_seen = now;
                member.joining = true;
            }
            None => {
                self.members.insert(
                    member_id.to_owned(),
                    Member {
                        group_instance_id: request.group_instance_id.clone(),
                        client_id: request.client_id.clone(),
                        client_host: request.client_host.clone(),
                        session_timeout: request.session_timeout,
                        rebalance_timeout: request.rebalance_timeout,
                        protocols: request.protocols.clone(),
                        last_seen: now,
                        assignment: Bytes::new(),
                        joining: true,
                        syncing: false,
                    },
                );
                if let Some(instance) = &request.group_instance_id {
                    self.instances
                        .insert(instance.clone(), member_id.to_owned());
                }
            }
        }
        // Any join is a rebalance: a known member rejoins because it wants one.
        let first = self.state == State::Empty;
        self.prepare_rebalance(now, answers);
        if !initial_delay.is_zero() {
            if first {
                self.initial_limit = Some(now + request.rebalance_timeout);
            }
            if let Some(limit) = self.initial_limit {
                self.initial_until = Some((now + initial_delay).min(limit));
            }
        }
        self.maybe_complete_join(false, now, answers);
        Outcome::Waits
    }

    /// SyncGroup: the leader hands out assignments; everyone gets theirs.
    pub fn sync(
        &mut self,
        member: MemberRef<'_>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
        answers: &mut Vec<Answer>,
    ) -> Outcome<Synced> {
        let member_id = member.id;
        let known = self.identify(member_id, member.instance);
        if known != codes::NONE {
            return Outcome::Now((known, Bytes::new()));
        }
        if generation != self.generation {
            return Outcome::Now((codes::ILLEGAL_GENERATION, Bytes::new()));
        }
        match self.state {
            State::PreparingRebalance | State::Empty => {
                return Outcome::Now((codes::REBALANCE_IN_PROGRESS, Bytes::new()));
            }
            State::Stable => {
                let member = &self.members[member_id];
                return Outcome::Now((codes::NONE, member.assignment.clone()));
            }
            State::CompletingRebalance => {}
        }
        if self.leader.as_deref() == Some(member_id) {
            for (id, assignment) in assignments {
                if let Some(member) = self.members.get_mut(&id) {
                    member.assignment = assignment;
                }
            }
            self.state = State::Stable;
            for (id, member) in self.members.iter_mut() {
                if std::mem::take(&mut member.syncing) {
                    answers.push(Answer::Sync(
                        id.clone(),
                        (codes::NONE, member.assignment.clone()),
                    ));
                }
            }
            return Outcome::Now((codes::NONE, self.members[member_id].assignment.clone()));
        }
        if let Some(member) = self.members.get_mut(member_id) {
            member.syncing = true;
            member.last_seen = now;
        }
        Outcome::Waits
    }

    /// Heartbeat: a sign of life, and whether a rebalance wants the member back.
    pub fn heartbeat(&mut self, member: MemberRef<'_>, generation: i32, now: Instant) -> i16 {
        let known = self.identify(member.id, member.instance);
        if known != codes::NONE {
            return known;
        }
        let Some(m) = self.members.get_mut(member.id) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        m.last_seen = now;
        if self.state == State::PreparingRebalance {
            return codes::REBALANCE_IN_PROGRESS;
        }
        if generation != self.generation {
            return codes::ILLEGAL_GENERATION;
        }
        codes::NONE
    }

    /// LeaveGroup of one member. A static member may be named by its instance id alone (an
    /// empty member id), as an administrator removing it does.
    pub fn leave(&mut self, member: MemberRef<'_>, now: Instant, answers: &mut Vec<Answer>) -> i16 {
        let id = match member.instance.and_then(|i| self.instances.get(i)) {
            Some(holder) if member.id.is_empty() => holder.clone(),
            _ => member.id.to_owned(),
        };
        let known = self.identify(&id, member.instance);
        if known != codes::NONE {
            return known;
        }
        self.remove_member(&id, now, answers);
        codes::NONE
    }

    /// Drops members whose session timed out (returned, for the log), and completes a join
    /// whose deadline passed.
    pub fn expire(&mut self, now: Instant, answers: &mut Vec<Answer>) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| !m.joining && now > m.last_seen + m.session_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.remove_member(id, now, answers);
        }
        if self.deadline.is_some_and(|d| now >= d) {
            self.maybe_complete_join(true, now, answers);
        } else if self.initial_until.is_some_and(|t| now >= t) {
            self.maybe_complete_join(false, now, answers);
        }
        expired
    }

    /// Whether `member` of `generation` may commit (see [`super::coordinator::Coordinator::may_commit`]);
    /// a commit counts as a sign of life.
    pub fn may_commit(&mut self, member: MemberRef<'_>, generation: i32, now: Instant) -> i16 {
        let known = self.identify(member.id, member.instance);
        if known != codes::NONE {
            return known;
        }
        if generation != self.generation {
            return codes::ILLEGAL_GENERATION;
        }
        if self.state == State::CompletingRebalance {
            return codes::REBALANCE_IN_PROGRESS;
        }
        if let Some(m) = self.members.get_mut(member.id) {
            m.last_seen = now;
        }
        codes::NONE
    }

    /// Starts a rebalance: everyone must join again.
    fn prepare_rebalance(&mut self, now: Instant, answers: &mut Vec<Answer>) {
        if self.state == State::PreparingRebalance {
            return;
        }
        self.state = State::PreparingRebalance;
        let longest = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.deadline = Some(now + longest);
        // Members waiting in SyncGroup must join again.
        for (id, member) in self.members.iter_mut() {
            if std::mem::take(&mut member.syncing) {
                answers.push(Answer::Sync(
                    id.clone(),
                    (codes::REBALANCE_IN_PROGRESS, Bytes::new()),
                ));
            }
        }
    }

    /// Protocols every member supports, chosen by votes (each member's first supported one).
    fn choose_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let common: Vec<&String> = first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .collect();
        let mut votes: HashMap<&String, usize> = HashMap::new();
        for member in self.members.values() {
            if let Some((name, _)) = member.protocols.iter().find(|(n, _)| common.contains(&n)) {
                *votes.entry(name).or_default() += 1;
            }
        }
        common
            .into_iter()
            .max_by_key(|name| {
                (
                    votes.get(name).copied().unwrap_or(0),
                    std::cmp::Reverse(*name),
                )
            })
            .cloned()
    }

    /// Completes the join barrier if everyone has rejoined (or `force`: the deadline passed).
    fn maybe_complete_join(&mut self, force: bool, now: Instant, answers: &mut Vec<Answer>) {
        if self.state != State::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.joining);
        if !all_joined && !force {
            return;
        }
        if !force && self.initial_until.is_some_and(|t| now < t) {
            return;
        }
        self.initial_until = None;
        self.initial_limit = None;
        self.members.retain(|_, m| m.joining);
        let members = &self.members;
        self.instances.retain(|_, id| members.contains_key(id));
        if self.members.is_empty() {
            self.state = State::Empty;
            self.protocol = None;
            self.leader = None;
            self.deadline = None;
            return;
        }
        self.generation += 1;
        self.protocol = self.choose_protocol();
        let protocol = self.protocol.clone().unwrap_or_default();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        let leader = self.leader.clone().unwrap_or_default();
        self.state = State::CompletingRebalance;
        self.deadline = None;
        let roster: Vec<(String, Option<String>, Bytes)> = self
            .members
            .iter()
            .map(|(id, m)| {
                (
                    id.clone(),
                    m.group_instance_id.clone(),
                    m.metadata_for(&protocol),
                )
            })
            .collect();
        for (id, member) in self.members.iter_mut() {
            member.last_seen = now;
            member.assignment = Bytes::new();
            if std::mem::take(&mut member.joining) {
                answers.push(Answer::Join(
                    id.clone(),
                    Joined {
                        error: codes::NONE,
                        generation: self.generation,
                        protocol_type: self.protocol_type.clone(),
                        protocol: protocol.clone(),
                        leader: leader.clone(),
                        member_id: id.clone(),
                        members: if *id == leader {
                            roster.clone()
                        } else {
                            Vec::new()
                        },
                    },
                ));
            }
        }
    }

    /// Whether `member_id` (with its `group.instance.id`, if static) may act in this group:
    /// NONE, FENCED_INSTANCE_ID if another member has taken over the instance, or
    /// UNKNOWN_MEMBER_ID.
    fn identify(&self, member_id: &str, instance: Option<&str>) -> i16 {
        if let Some(holder) = instance.and_then(|i| self.instances.get(i))
            && holder != member_id
        {
            return codes::FENCED_INSTANCE_ID;
        }
        if self.members.contains_key(member_id) {
            codes::NONE
        } else {
            codes::UNKNOWN_MEMBER_ID
        }
    }

    /// A static member joins again under its instance id with no member id (a restarted
    /// consumer): the member that held the instance is fenced, and its place — assignment and,
    /// if it led, the leadership — passes to `new_id`. Returns the leader before the change.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: &str,
        request: &JoinRequest,
        now: Instant,
        answers: &mut Vec<Answer>,
    ) -> Option<String> {
        let previous_leader = self.leader.clone();
        let Some(mut member) = self.members.remove(old_id) else {
            return previous_leader;
        };
        if std::mem::take(&mut member.joining) {
            answers.push(Answer::Join(
                old_id.to_owned(),
                Joined::error(codes::FENCED_INSTANCE_ID, old_id),
            ));
        }
        if std::mem::take(&mut member.syncing) {
            answers.push(Answer::Sync(
                old_id.to_owned(),
                (codes::FENCED_INSTANCE_ID, Bytes::new()),
            ));
        }
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        member.session_timeout = request.session_timeout;
        member.rebalance_timeout = request.rebalance_timeout;
        member.protocols = request.protocols.clone();
        member.last_seen = now;
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.to_owned());
        }
        if let Some(instance) = &member.group_instance_id {
            self.instances.insert(instance.clone(), new_id.to_owned());
        }
        self.members.insert(new_id.to_owned(), member);
        previous_leader
    }

    fn remove_member(&mut self, id: &str, now: Instant, answers: &mut Vec<Answer>) {
        if let Some(member) = self.members.remove(id) {
            if let Some(instance) = &member.group_instance_id
                && self
                    .instances
                    .get(instance)
                    .is_some_and(|holder| holder == id)
            {
                self.instances.remove(instance);
            }
            if member.joining {
                answers.push(Answer::Join(
                    id.to_owned(),
                    Joined::error(codes::UNKNOWN_MEMBER_ID, id),
                ));
            }
            if member.syncing {
                answers.push(Answer::Sync(
                    id.to_owned(),
                    (codes::UNKNOWN_MEMBER_ID, Bytes::new()),
                ));
            }
            if self.members.is_empty() {
                self.state = State::Empty;
                self.protocol = None;
                self.leader = None;
                self.deadline = None;
            } else {
                self.prepare_rebalance(now, answers);
                self.maybe_complete_join(false, now, answers);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(client: &str) -> JoinRequest {
        JoinRequest {
            group: "g".into(),
            member_id: String::new(),
            group_instance_id: None,
            client_id: client.into(),
            client_host: "127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::new())],
            require_member_id: false,
        }
    }

    fn joined(answers: &[Answer], member: &str) -> Option<Joined> {
        answers.iter().find_map(|a| match a {
            Answer::Join(id, j) if id == member => Some(j.clone()),
            _ => None,
        })
    }

    /// Time is the caller's: a member that does not rejoin holds the barrier exactly until the
    /// rebalance timeout, and one that stops heartbeating is dropped exactly after its session.
    #[test]
    fn the_join_barrier_and_sessions_run_on_the_time_they_are_given() {
        let t0 = Instant::now();
        let mut group = Group::new();
        let mut answers = Vec::new();
        let out = group.join("a", None, &request("a"), Duration::ZERO, t0, &mut answers);
        assert!(matches!(out, Outcome::Waits));
        let a = joined(&answers, "a").expect("a lone member's join completes at once");
        assert_eq!(
            (a.error, a.generation, a.leader.as_str()),
            (codes::NONE, 1, "a")
        );
        answers.clear();
        let out = group.sync(MemberRef::dynamic("a"), 1, vec![], t0, &mut answers);
        assert!(matches!(out, Outcome::Now((codes::NONE, _))));
        assert_eq!(group.state, State::Stable);

        // b joins: a rebalance that waits for a, until a's rebalance timeout (30 s).
        let t1 = t0 + Duration::from_secs(1);
        group.join("b", None, &request("b"), Duration::ZERO, t1, &mut answers);
        assert!(answers.is_empty(), "the barrier waits for a");
        assert_eq!(
            group.heartbeat(MemberRef::dynamic("a"), 1, t1),
            codes::REBALANCE_IN_PROGRESS
        );
        // a keeps heartbeating (so its session holds) but does not rejoin.
        for s in [9, 18, 27] {
            let beat = group.heartbeat(MemberRef::dynamic("a"), 1, t1 + Duration::from_secs(s));
            assert_eq!(beat, codes::REBALANCE_IN_PROGRESS);
        }
        group.expire(t1 + Duration::from_secs(29), &mut answers);
        assert!(answers.is_empty(), "not yet");
        group.expire(t1 + Duration::from_secs(30), &mut answers);
        let b = joined(&answers, "b").expect("the deadline completes the join");
        assert_eq!((b.generation, b.leader.as_str()), (2, "b"));
        assert!(!group.members.contains_key("a"), "a did not rejoin");
        answers.clear();

        // b's session: heartbeats keep it; silence past 10 s drops it.
        let t2 = t1 + Duration::from_secs(30);
        group.sync(MemberRef::dynamic("b"), 2, vec![], t2, &mut answers);
        assert_eq!(
            group.heartbeat(MemberRef::dynamic("b"), 2, t2 + Duration::from_secs(9)),
            codes::NONE
        );
        let gone = group.expire(t2 + Duration::from_secs(19), &mut answers);
        assert!(gone.is_empty());
        let gone = group.expire(t2 + Duration::from_secs(20), &mut answers);
        assert_eq!(gone, ["b"]);
        assert_eq!(group.state, State::Empty);
    }

    #[test]
    fn a_leaving_member_answers_those_waiting_for_it() {
        let t0 = Instant::now();
        let mut group = Group::new();
        let mut answers = Vec::new();
        group.join("a", None, &request("a"), Duration::ZERO, t0, &mut answers);
        group.sync(MemberRef::dynamic("a"), 1, vec![], t0, &mut answers);
        answers.clear();
        group.join("b", None, &request("b"), Duration::ZERO, t0, &mut answers);
        // a leaves instead of rejoining: b's join completes without it.
        assert_eq!(
            group.leave(MemberRef::dynamic("a"), t0, &mut answers),
            codes::NONE
        );
        let b = joined(&answers, "b").unwrap();
        assert_eq!((b.error, b.generation), (codes::NONE, 2));
        assert_eq!(
            group.leave(MemberRef::dynamic("a"), t0, &mut answers),
            codes::UNKNOWN_MEMBER_ID
        );
    }
}
