//! Consumer groups: the classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup)
//! with a real join barrier; what groups commit is kept by [`super::committed_offsets`].
//!
//! A rebalance starts when a member joins, leaves, or misses its session timeout. Members learn
//! of it from their heartbeats (REBALANCE_IN_PROGRESS) and join again; the join completes when
//! every member has rejoined or the longest rebalance timeout has passed (members that did not
//! rejoin are dropped). Then the leader gets every member's metadata, runs the client-side
//! assignor (range, roundrobin, sticky, cooperative-sticky: Blink does not look inside), and
//! hands the assignments back through SyncGroup. Waiting requests hold no lock: they wait on a
//! oneshot channel the group answers when the barrier falls.
//!
//! Static members (KIP-345: a `group.instance.id`) keep their place across restarts: one that
//! joins again under its instance id takes over its old member's assignment — in a stable group
//! without a rebalance — and the member it replaced is fenced (FENCED_INSTANCE_ID) from then on.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::codes;
use super::committed_offsets::CommittedOffsets;

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
    fn error(error: i16, member_id: &str) -> Self {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

struct Member {
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    last_seen: Instant,
    assignment: Bytes,
    joining: Option<oneshot::Sender<Joined>>,
    syncing: Option<oneshot::Sender<Synced>>,
}

impl Member {
    /// The metadata this member sent for `protocol` (empty if it did not offer it).
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }
}

struct Group {
    state: State,
    generation: i32,
    protocol_type: String,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
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

impl Group {
    fn new() -> Self {
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

    /// Starts a rebalance: everyone must join again.
    fn prepare_rebalance(&mut self) {
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
        self.deadline = Some(Instant::now() + longest);
        // Members waiting in SyncGroup must join again.
        for member in self.members.values_mut() {
            if let Some(waiter) = member.syncing.take() {
                let _ = waiter.send((codes::REBALANCE_IN_PROGRESS, Bytes::new()));
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
    fn maybe_complete_join(&mut self, force: bool) {
        if self.state != State::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.joining.is_some());
        if !all_joined && !force {
            return;
        }
        if !force && self.initial_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.initial_until = None;
        self.initial_limit = None;
        self.members.retain(|_, m| m.joining.is_some());
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
        let now = Instant::now();
        for (id, member) in self.members.iter_mut() {
            member.last_seen = now;
            member.assignment = Bytes::new();
            if let Some(waiter) = member.joining.take() {
                let _ = waiter.send(Joined {
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
                });
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
    ) -> Option<String> {
        let previous_leader = self.leader.clone();
        let Some(mut member) = self.members.remove(old_id) else {
            return previous_leader;
        };
        if let Some(waiter) = member.joining.take() {
            let _ = waiter.send(Joined::error(codes::FENCED_INSTANCE_ID, old_id));
        }
        if let Some(waiter) = member.syncing.take() {
            let _ = waiter.send((codes::FENCED_INSTANCE_ID, Bytes::new()));
        }
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        member.session_timeout = request.session_timeout;
        member.rebalance_timeout = request.rebalance_timeout;
        member.protocols = request.protocols.clone();
        member.last_seen = Instant::now();
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.to_owned());
        }
        if let Some(instance) = &member.group_instance_id {
            self.instances.insert(instance.clone(), new_id.to_owned());
        }
        self.members.insert(new_id.to_owned(), member);
        previous_leader
    }

    fn remove_member(&mut self, id: &str) {
        if let Some(member) = self.members.remove(id) {
            if let Some(instance) = &member.group_instance_id
                && self
                    .instances
                    .get(instance)
                    .is_some_and(|holder| holder == id)
            {
                self.instances.remove(instance);
            }
            if let Some(waiter) = member.joining {
                let _ = waiter.send(Joined::error(codes::UNKNOWN_MEMBER_ID, id));
            }
            if let Some(waiter) = member.syncing {
                let _ = waiter.send((codes::UNKNOWN_MEMBER_ID, Bytes::new()));
            }
            if self.members.is_empty() {
                self.state = State::Empty;
                self.protocol = None;
                self.leader = None;
                self.deadline = None;
            } else {
                self.prepare_rebalance();
                self.maybe_complete_join(false);
            }
        }
    }
}

/// The group coordinator of this broker.
pub struct Coordinator {
    groups: Mutex<HashMap<String, Group>>,
    /// How long a new group's first rebalance waits for more members.
    initial_delay: Duration,
    /// What the groups have committed.
    pub offsets: CommittedOffsets,
    next_member: std::sync::atomic::AtomicU64,
}

impl Coordinator {
    /// Loads committed offsets from `offsets_path` (missing: none yet); a new group's first
    /// rebalance waits `initial_delay` for more members.
    pub fn open(offsets_path: PathBuf, initial_delay: Duration) -> std::io::Result<Self> {
        Ok(Coordinator {
            groups: Mutex::new(HashMap::new()),
            initial_delay,
            offsets: CommittedOffsets::open(offsets_path)?,
            next_member: std::sync::atomic::AtomicU64::new(1),
        })
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new member id: the client id (a static member's: its instance id), a counter and a
    /// UUID, as Kafka's are.
    fn new_member_id(&self, prefix: &str) -> String {
        let n = self
            .next_member
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let uuid = crate::message::format_uuid(&crate::message::new_uuid());
        format!("{prefix}-{n}-{uuid}")
    }

    /// JoinGroup: waits at the barrier and returns what the member needs.
    pub async fn join(&self, request: JoinRequest) -> Joined {
        if request.group.is_empty() {
            return Joined::error(codes::INVALID_GROUP_ID, &request.member_id);
        }
        if request.protocols.is_empty() || request.protocol_type.is_empty() {
            return Joined::error(codes::INCONSISTENT_GROUP_PROTOCOL, &request.member_id);
        }
        let waiter = {
            let mut groups = self.groups();
            let group = groups
                .entry(request.group.clone())
                .or_insert_with(Group::new);
            let mut member_id = request.member_id.clone();
            // The member a restarted static member takes over.
            let mut replaces = None;
            if let Some(instance) = request.group_instance_id.as_deref() {
                let holder = group.instances.get(instance).cloned();
                if member_id.is_empty() {
                    // A static member needs no MEMBER_ID_REQUIRED round: its instance id
                    // already names it.
                    member_id = self.new_member_id(instance);
                    replaces = holder;
                } else if holder.is_some_and(|h| h != member_id) {
                    return Joined::error(codes::FENCED_INSTANCE_ID, &member_id);
                }
            } else if member_id.is_empty() {
                member_id = self.new_member_id(&request.client_id);
                if request.require_member_id {
                    let mut answer = Joined::error(codes::MEMBER_ID_REQUIRED, &member_id);
                    answer.member_id = member_id;
                    return answer;
                }
            }
            // A member id Blink does not know (handed out by MEMBER_ID_REQUIRED, or from before
            // a restart) joins as a new member.
            if group.state != State::Empty && group.protocol_type != request.protocol_type {
                return Joined::error(codes::INCONSISTENT_GROUP_PROTOCOL, &member_id);
            }
            let others_share = group
                .members
                .iter()
                .filter(|(id, _)| **id != member_id && Some(*id) != replaces.as_ref())
                .all(|(_, m)| {
                    m.protocols
                        .iter()
                        .any(|(n, _)| request.protocols.iter().any(|(r, _)| r == n))
                });
            if !others_share {
                return Joined::error(codes::INCONSISTENT_GROUP_PROTOCOL, &member_id);
            }
            if group.state == State::Empty {
                group.protocol_type = request.protocol_type.clone();
            }
            if let Some(old_id) = &replaces {
                let previous_leader = group.replace_static_member(old_id, &member_id, &request);
                tracing::debug!(group = %request.group, old = %old_id, new = %member_id, "kafka: static member rejoins");
                // In a stable group whose protocol stays, the returning member takes up its old
                // assignment (through SyncGroup) and nobody rebalances. The leader named is the
                // one before the change, so a returning leader does not assign again: a stable
                // group would not pass its new assignments on.
                if group.state == State::Stable && group.protocol == group.choose_protocol() {
                    return Joined {
                        error: codes::NONE,
                        generation: group.generation,
                        protocol_type: group.protocol_type.clone(),
                        protocol: group.protocol.clone().unwrap_or_default(),
                        leader: previous_leader.unwrap_or_default(),
                        member_id,
                        members: Vec::new(),
                    };
                }
            }
            let (tx, rx) = oneshot::channel();
            match group.members.get_mut(&member_id) {
                Some(member) => {
                    member.protocols = request.protocols.clone();
                    member.session_timeout = request.session_timeout;
                    member.rebalance_timeout = request.rebalance_timeout;
                    member.last_seen = Instant::now();
                    if let Some(old) = member.joining.replace(tx) {
                        let _ = old.send(Joined::error(codes::UNKNOWN_MEMBER_ID, &member_id));
                    }
                }
                None => {
                    group.members.insert(
                        member_id.clone(),
                        Member {
                            group_instance_id: request.group_instance_id.clone(),
                            client_id: request.client_id.clone(),
                            client_host: request.client_host.clone(),
                            session_timeout: request.session_timeout,
                            rebalance_timeout: request.rebalance_timeout,
                            protocols: request.protocols.clone(),
                            last_seen: Instant::now(),
                            assignment: Bytes::new(),
                            joining: Some(tx),
                            syncing: None,
                        },
                    );
                    if let Some(instance) = &request.group_instance_id {
                        group.instances.insert(instance.clone(), member_id.clone());
                    }
                }
            }
            // Any join is a rebalance: a known member rejoins because it wants one.
            let first = group.state == State::Empty;
            group.prepare_rebalance();
            if !self.initial_delay.is_zero() {
                let now = Instant::now();
                if first {
                    group.initial_limit = Some(now + request.rebalance_timeout);
                }
                if let Some(limit) = group.initial_limit {
                    group.initial_until = Some((now + self.initial_delay).min(limit));
                }
            }
            group.maybe_complete_join(false);
            rx
        };
        waiter
            .await
            .unwrap_or_else(|_| Joined::error(codes::REBALANCE_IN_PROGRESS, &request.member_id))
    }

    /// SyncGroup: the leader hands out assignments; everyone gets theirs.
    pub async fn sync(
        &self,
        group_id: &str,
        member: MemberRef<'_>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> Synced {
        let member_id = member.id;
        let waiter = {
            let mut groups = self.groups();
            let Some(group) = groups.get_mut(group_id) else {
                return (codes::UNKNOWN_MEMBER_ID, Bytes::new());
            };
            let known = group.identify(member_id, member.instance);
            if known != codes::NONE {
                return (known, Bytes::new());
            }
            if generation != group.generation {
                return (codes::ILLEGAL_GENERATION, Bytes::new());
            }
            match group.state {
                State::PreparingRebalance | State::Empty => {
                    return (codes::REBALANCE_IN_PROGRESS, Bytes::new());
                }
                State::Stable => {
                    let member = &group.members[member_id];
                    return (codes::NONE, member.assignment.clone());
                }
                State::CompletingRebalance => {}
            }
            if group.leader.as_deref() == Some(member_id) {
                for (id, assignment) in assignments {
                    if let Some(member) = group.members.get_mut(&id) {
                        member.assignment = assignment;
                    }
                }
                group.state = State::Stable;
                for member in group.members.values_mut() {
                    if let Some(waiter) = member.syncing.take() {
                        let _ = waiter.send((codes::NONE, member.assignment.clone()));
                    }
                }
                return (codes::NONE, group.members[member_id].assignment.clone());
            }
            let (tx, rx) = oneshot::channel();
            if let Some(member) = group.members.get_mut(member_id) {
                member.syncing = Some(tx);
                member.last_seen = Instant::now();
            }
            rx
        };
        waiter
            .await
            .unwrap_or((codes::REBALANCE_IN_PROGRESS, Bytes::new()))
    }

    pub fn heartbeat(&self, group_id: &str, member: MemberRef<'_>, generation: i32) -> i16 {
        let mut groups = self.groups();
        let Some(group) = groups.get_mut(group_id) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        let known = group.identify(member.id, member.instance);
        if known != codes::NONE {
            return known;
        }
        let Some(member) = group.members.get_mut(member.id) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        member.last_seen = Instant::now();
        if group.state == State::PreparingRebalance {
            return codes::REBALANCE_IN_PROGRESS;
        }
        if generation != group.generation {
            return codes::ILLEGAL_GENERATION;
        }
        codes::NONE
    }

    /// LeaveGroup of one member; its error code. A static member may be named by its instance
    /// id alone (an empty member id), as an administrator removing it does.
    pub fn leave(&self, group_id: &str, member: MemberRef<'_>) -> i16 {
        tracing::debug!(group = group_id, member = member.id, instance = ?member.instance, "kafka: member leaves");
        let mut groups = self.groups();
        let Some(group) = groups.get_mut(group_id) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        let id = match member.instance.and_then(|i| group.instances.get(i)) {
            Some(holder) if member.id.is_empty() => holder.clone(),
            _ => member.id.to_owned(),
        };
        let known = group.identify(&id, member.instance);
        if known != codes::NONE {
            return known;
        }
        group.remove_member(&id);
        codes::NONE
    }

    /// Drops members whose session timed out, and completes joins whose deadline passed.
    pub fn expire(&self) {
        let now = Instant::now();
        let mut groups = self.groups();
        for (name, group) in groups.iter_mut() {
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| m.joining.is_none() && now > m.last_seen + m.session_timeout)
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                tracing::info!(group = %name, member = %id, "kafka: member's session timed out");
                group.remove_member(&id);
            }
            if group.deadline.is_some_and(|d| now >= d) {
                group.maybe_complete_join(true);
            } else if group.initial_until.is_some_and(|t| now >= t) {
                group.maybe_complete_join(false);
            }
        }
    }

    /// Whether `member` of `generation` may commit for `group_id` (generation −1 and no member:
    /// a consumer outside any group, which Kafka allows). A member may commit while a rebalance
    /// is being prepared — it still owns its partitions until it joins again, and commits from
    /// its revocation callback are how it hands them over — but not between the join and its
    /// assignment (REBALANCE_IN_PROGRESS), as in Kafka. A commit counts as a sign of life.
    pub fn may_commit(&self, group_id: &str, member: MemberRef<'_>, generation: i32) -> i16 {
        let mut groups = self.groups();
        let group = groups.get_mut(group_id);
        if generation < 0 && member.id.is_empty() && member.instance.is_none() {
            // A commit outside the group protocol (a consumer that assigns its own partitions)
            // is taken only while the group has no members, as Kafka does: a consumer that has
            // just left a live group must not overwrite what its successors commit.
            return match group {
                Some(g) if !g.members.is_empty() => codes::UNKNOWN_MEMBER_ID,
                _ => codes::NONE,
            };
        }
        let Some(group) = group else {
            return codes::ILLEGAL_GENERATION;
        };
        let known = group.identify(member.id, member.instance);
        if known != codes::NONE {
            return known;
        }
        if generation != group.generation {
            return codes::ILLEGAL_GENERATION;
        }
        if group.state == State::CompletingRebalance {
            return codes::REBALANCE_IN_PROGRESS;
        }
        if let Some(m) = group.members.get_mut(member.id) {
            m.last_seen = Instant::now();
        }
        codes::NONE
    }

    /// DeleteGroups of one group, with its committed offsets. Only a group without members can
    /// go (NON_EMPTY_GROUP otherwise, as Kafka answers); an unknown one is GROUP_ID_NOT_FOUND.
    pub fn delete(&self, group_id: &str) -> std::io::Result<i16> {
        let mut groups = self.groups();
        if groups.get(group_id).is_some_and(|g| !g.members.is_empty()) {
            return Ok(codes::NON_EMPTY_GROUP);
        }
        let had_offsets = self.offsets.remove_group(group_id)?;
        if groups.remove(group_id).is_none() && !had_offsets {
            return Ok(codes::GROUP_ID_NOT_FOUND);
        }
        Ok(codes::NONE)
    }

    /// DescribeGroups of one group: (state, protocol type, protocol, members as (id, instance,
    /// client id, host, metadata, assignment)); `None` if it is unknown.
    #[allow(clippy::type_complexity)]
    pub fn describe(
        &self,
        group_id: &str,
    ) -> Option<(
        &'static str,
        String,
        String,
        Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
    )> {
        let groups = self.groups();
        let group = groups.get(group_id)?;
        let protocol = group.protocol.clone().unwrap_or_default();
        let members = group
            .members
            .iter()
            .map(|(id, m)| {
                (
                    id.clone(),
                    m.group_instance_id.clone(),
                    m.client_id.clone(),
                    m.client_host.clone(),
                    m.metadata_for(&protocol),
                    m.assignment.clone(),
                )
            })
            .collect();
        Some((
            group.state.name(),
            group.protocol_type.clone(),
            protocol,
            members,
        ))
    }

    /// Every group: (name, protocol type, state).
    pub fn list(&self) -> Vec<(String, String, &'static str)> {
        let groups = self.groups();
        let mut out: Vec<_> = groups
            .iter()
            .map(|(name, g)| (name.clone(), g.protocol_type.clone(), g.state.name()))
            .collect();
        for name in self.offsets.groups() {
            if !groups.contains_key(&name) {
                out.push((name, "consumer".into(), State::Empty.name()));
            }
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A coordinator over a fresh directory (kept alive by the returned guard) whose new groups
    /// wait `initial_delay` for more members.
    fn coordinator(initial_delay: Duration) -> (tempfile::TempDir, std::sync::Arc<Coordinator>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("consumer_offsets.json");
        let coordinator = Coordinator::open(path, initial_delay).unwrap();
        (dir, std::sync::Arc::new(coordinator))
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn commits_outside_the_group_protocol_only_while_the_group_has_no_members() {
        let (_dir, coordinator) = coordinator(Duration::ZERO);
        assert_eq!(
            coordinator.may_commit("g", MemberRef::dynamic(""), -1),
            codes::NONE,
            "no such group"
        );
        let runtime = runtime();
        let joined = runtime.block_on(coordinator.join(JoinRequest {
            group: "g".into(),
            member_id: String::new(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_millis(10),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::new())],
            require_member_id: false,
        }));
        assert_eq!(joined.error, codes::NONE);
        let member = MemberRef::dynamic(&joined.member_id);
        let synced = runtime.block_on(coordinator.sync("g", member, joined.generation, vec![]));
        assert_eq!(synced.0, codes::NONE);
        // A member that has left (its id and generation reset) cannot commit into a live group.
        assert_eq!(
            coordinator.may_commit("g", MemberRef::dynamic(""), -1),
            codes::UNKNOWN_MEMBER_ID
        );
        assert_eq!(
            coordinator.may_commit(
                "g",
                MemberRef::dynamic(&joined.member_id),
                joined.generation
            ),
            codes::NONE
        );
        assert_eq!(
            coordinator.leave("g", MemberRef::dynamic(&joined.member_id)),
            codes::NONE
        );
        assert_eq!(
            coordinator.may_commit("g", MemberRef::dynamic(""), -1),
            codes::NONE,
            "empty again"
        );
    }

    fn join_request(client: &str) -> JoinRequest {
        JoinRequest {
            group: "g".into(),
            member_id: String::new(),
            group_instance_id: None,
            client_id: client.into(),
            client_host: "127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::new())],
            require_member_id: false,
        }
    }

    #[test]
    fn consumers_starting_together_share_the_first_generation() {
        let (_dir, coordinator) = coordinator(Duration::from_millis(300));
        let runtime = runtime();
        let started = Instant::now();
        let (a, b) = runtime.block_on(async {
            let ticking = coordinator.clone();
            let ticker = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    ticking.expire();
                }
            });
            let first = {
                let c = coordinator.clone();
                tokio::spawn(async move { c.join(join_request("a")).await })
            };
            tokio::time::sleep(Duration::from_millis(100)).await;
            let second = coordinator.join(join_request("b")).await;
            let first = first.await.unwrap();
            ticker.abort();
            (first, second)
        });
        assert_eq!((a.error, b.error), (codes::NONE, codes::NONE));
        assert_eq!(
            (a.generation, b.generation),
            (1, 1),
            "one rebalance for both"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "the wait was extended"
        );
        assert_eq!(a.leader, b.leader);
    }

    #[test]
    fn a_restarted_static_member_takes_its_place_back_without_a_rebalance() {
        let (_dir, coordinator) = coordinator(Duration::ZERO);
        let runtime = runtime();
        let static_join = |member_id: &str| JoinRequest {
            member_id: member_id.into(),
            group_instance_id: Some("instance-a".into()),
            require_member_id: true,
            ..join_request("a")
        };
        let first = runtime.block_on(coordinator.join(static_join("")));
        assert_eq!(first.error, codes::NONE, "no MEMBER_ID_REQUIRED round");
        assert_eq!(first.leader, first.member_id);
        let old = MemberRef {
            id: &first.member_id,
            instance: Some("instance-a"),
        };
        let assignment = Bytes::from_static(b"partitions of a");
        let synced = runtime.block_on(coordinator.sync(
            "g",
            old,
            first.generation,
            vec![(first.member_id.clone(), assignment.clone())],
        ));
        assert_eq!(synced, (codes::NONE, assignment.clone()));

        // The same instance starts again, with no member id: it is answered at once, in the
        // same generation, and is not told it leads (so it does not assign again).
        let again = runtime.block_on(coordinator.join(static_join("")));
        assert_eq!(again.error, codes::NONE);
        assert_ne!(again.member_id, first.member_id);
        assert_eq!(again.generation, first.generation, "no rebalance");
        assert_eq!(again.leader, first.member_id);
        assert!(again.members.is_empty());
        let new = MemberRef {
            id: &again.member_id,
            instance: Some("instance-a"),
        };
        let synced = runtime.block_on(coordinator.sync("g", new, again.generation, vec![]));
        assert_eq!(synced, (codes::NONE, assignment), "the old assignment");
        assert_eq!(
            coordinator.heartbeat("g", new, again.generation),
            codes::NONE
        );

        // The member it replaced is fenced everywhere.
        assert_eq!(
            coordinator.heartbeat("g", old, first.generation),
            codes::FENCED_INSTANCE_ID
        );
        assert_eq!(
            coordinator.may_commit("g", old, first.generation),
            codes::FENCED_INSTANCE_ID
        );
        let fenced = runtime.block_on(coordinator.join(static_join(&first.member_id)));
        assert_eq!(fenced.error, codes::FENCED_INSTANCE_ID);
        assert_eq!(coordinator.leave("g", old), codes::FENCED_INSTANCE_ID);

        // An administrator removes it by instance id alone.
        let by_instance = MemberRef {
            id: "",
            instance: Some("instance-a"),
        };
        assert_eq!(coordinator.leave("g", by_instance), codes::NONE);
        assert_eq!(coordinator.describe("g").unwrap().0, "Empty");
        assert_eq!(
            coordinator.leave("g", by_instance),
            codes::UNKNOWN_MEMBER_ID
        );
    }

    #[test]
    fn members_commit_while_a_rebalance_is_prepared_but_not_before_their_assignment() {
        let (_dir, coordinator) = coordinator(Duration::ZERO);
        let runtime = runtime();
        runtime.block_on(async {
            let a = coordinator.join(join_request("a")).await;
            let a_ref = MemberRef::dynamic(&a.member_id);
            let synced = coordinator.sync("g", a_ref, a.generation, vec![]).await;
            assert_eq!(synced.0, codes::NONE);
            // b's arrival starts a rebalance that waits for a to join again.
            let b = {
                let c = coordinator.clone();
                tokio::spawn(async move { c.join(join_request("b")).await })
            };
            tokio::task::yield_now().await;
            assert_eq!(coordinator.describe("g").unwrap().0, "PreparingRebalance");
            assert_eq!(
                coordinator.may_commit("g", a_ref, a.generation),
                codes::NONE,
                "a still owns its partitions"
            );
            let a2 = coordinator
                .join(JoinRequest {
                    member_id: a.member_id.clone(),
                    ..join_request("a")
                })
                .await;
            let b = b.await.unwrap();
            assert_eq!((a2.generation, b.generation), (2, 2));
            assert_eq!(coordinator.describe("g").unwrap().0, "CompletingRebalance");
            assert_eq!(
                coordinator.may_commit("g", a_ref, a2.generation),
                codes::REBALANCE_IN_PROGRESS
            );
            assert_eq!(
                coordinator.may_commit("g", a_ref, a.generation),
                codes::ILLEGAL_GENERATION
            );
        });
    }
}
