//! The group coordinator of this broker: every consumer group's state machine
//! ([`super::group_state`]) behind one lock, the members waiting in JoinGroup and SyncGroup,
//! and what the groups have committed ([`super::committed_offsets`]).
//!
//! Waiting requests hold no lock: each waits on a oneshot channel, answered when its group's
//! state machine says so (an [`Answer`]). The clock is read here and handed to the state
//! machine.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::codes;
use super::committed_offsets::CommittedOffsets;
use super::group_state::{Answer, Group, Outcome, State};
pub use super::group_state::{JoinRequest, Joined, MemberRef, Synced};

/// One group and the requests waiting on it.
#[derive(Default)]
struct Entry {
    group: Group,
    joins: HashMap<String, oneshot::Sender<Joined>>,
    syncs: HashMap<String, oneshot::Sender<Synced>>,
}

impl Entry {
    /// Sends `answers` to the requests waiting for them, and lets go of waiters whose member
    /// is gone (they hear REBALANCE_IN_PROGRESS and join again, as in Kafka).
    fn deliver(&mut self, answers: Vec<Answer>) {
        for answer in answers {
            match answer {
                Answer::Join(id, joined) => {
                    if let Some(waiter) = self.joins.remove(&id) {
                        let _ = waiter.send(joined);
                    }
                }
                Answer::Sync(id, synced) => {
                    if let Some(waiter) = self.syncs.remove(&id) {
                        let _ = waiter.send(synced);
                    }
                }
            }
        }
        let members = &self.group.members;
        self.joins.retain(|id, _| members.contains_key(id));
        self.syncs.retain(|id, _| members.contains_key(id));
    }
}

/// The group coordinator of this broker.
pub struct Coordinator {
    groups: Mutex<HashMap<String, Entry>>,
    /// How long a new group's first rebalance waits for more members.
    initial_delay: Duration,
    /// What the groups have committed.
    pub offsets: CommittedOffsets,
    next_member: std::sync::atomic::AtomicU64,
    /// Notified when a member joins, for the expiry task sleeping while no group has members
    /// (`notify_one` keeps a permit, so a join between its look and its wait is not lost).
    joined: tokio::sync::Notify,
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
            joined: tokio::sync::Notify::new(),
        })
    }

    /// Whether any group has members (only then can a session or a join deadline run out).
    pub fn has_members(&self) -> bool {
        self.groups().values().any(|e| !e.group.members.is_empty())
    }

    /// Resolves once a member has joined a group since the last time it resolved.
    pub async fn member_joined(&self) {
        self.joined.notified().await
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
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
            let entry = groups.entry(request.group.clone()).or_default();
            let mut member_id = request.member_id.clone();
            // The member a restarted static member takes over.
            let mut replaces = None;
            if let Some(instance) = request.group_instance_id.as_deref() {
                let holder = entry.group.instance_holder(instance).cloned();
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
                    return Joined::error(codes::MEMBER_ID_REQUIRED, &member_id);
                }
            }
            let mut answers = Vec::new();
            let outcome = entry.group.join(
                &member_id,
                replaces.as_deref(),
                &request,
                self.initial_delay,
                Instant::now(),
                &mut answers,
            );
            if !entry.group.members.is_empty() {
                self.joined.notify_one();
            }
            let waiter = match outcome {
                Outcome::Now(joined) => {
                    entry.deliver(answers);
                    return joined;
                }
                Outcome::Waits => {
                    let (tx, rx) = oneshot::channel();
                    // The same member joining again: its earlier request is answered now.
                    if let Some(old) = entry.joins.insert(member_id.clone(), tx) {
                        let _ = old.send(Joined::error(codes::UNKNOWN_MEMBER_ID, &member_id));
                    }
                    rx
                }
            };
            entry.deliver(answers);
            waiter
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
        let waiter = {
            let mut groups = self.groups();
            let Some(entry) = groups.get_mut(group_id) else {
                return (codes::UNKNOWN_MEMBER_ID, Bytes::new());
            };
            let mut answers = Vec::new();
            let outcome = entry.group.sync(
                member,
                generation,
                assignments,
                Instant::now(),
                &mut answers,
            );
            let waiter = match outcome {
                Outcome::Now(synced) => {
                    entry.deliver(answers);
                    return synced;
                }
                Outcome::Waits => {
                    let (tx, rx) = oneshot::channel();
                    entry.syncs.insert(member.id.to_owned(), tx);
                    rx
                }
            };
            entry.deliver(answers);
            waiter
        };
        waiter
            .await
            .unwrap_or((codes::REBALANCE_IN_PROGRESS, Bytes::new()))
    }

    pub fn heartbeat(&self, group_id: &str, member: MemberRef<'_>, generation: i32) -> i16 {
        let mut groups = self.groups();
        let Some(entry) = groups.get_mut(group_id) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        entry.group.heartbeat(member, generation, Instant::now())
    }

    /// LeaveGroup of one member; its error code. A static member may be named by its instance
    /// id alone (an empty member id), as an administrator removing it does.
    pub fn leave(&self, group_id: &str, member: MemberRef<'_>) -> i16 {
        tracing::debug!(group = group_id, member = member.id, instance = ?member.instance, "kafka: member leaves");
        let mut groups = self.groups();
        let Some(entry) = groups.get_mut(group_id) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        let mut answers = Vec::new();
        let code = entry.group.leave(member, Instant::now(), &mut answers);
        entry.deliver(answers);
        code
    }

    /// Drops members whose session timed out, and completes joins whose deadline passed.
    pub fn expire(&self) {
        let now = Instant::now();
        let mut groups = self.groups();
        for (name, entry) in groups.iter_mut() {
            let mut answers = Vec::new();
            for id in entry.group.expire(now, &mut answers) {
                tracing::info!(group = %name, member = %id, "kafka: member's session timed out");
            }
            entry.deliver(answers);
        }
    }

    /// Whether `member` of `generation` may commit for `group_id` (generation −1 and no member:
    /// a consumer outside any group, which Kafka allows). A member may commit while a rebalance
    /// is being prepared — it still owns its partitions until it joins again, and commits from
    /// its revocation callback are how it hands them over — but not between the join and its
    /// assignment (REBALANCE_IN_PROGRESS), as in Kafka. A commit counts as a sign of life.
    pub fn may_commit(&self, group_id: &str, member: MemberRef<'_>, generation: i32) -> i16 {
        let mut groups = self.groups();
        let entry = groups.get_mut(group_id);
        if generation < 0 && member.id.is_empty() && member.instance.is_none() {
            // A commit outside the group protocol (a consumer that assigns its own partitions)
            // is taken only while the group has no members, as Kafka does: a consumer that has
            // just left a live group must not overwrite what its successors commit.
            return match entry {
                Some(e) if !e.group.members.is_empty() => codes::UNKNOWN_MEMBER_ID,
                _ => codes::NONE,
            };
        }
        let Some(entry) = entry else {
            return codes::ILLEGAL_GENERATION;
        };
        entry.group.may_commit(member, generation, Instant::now())
    }

    /// DeleteGroups of one group, with its committed offsets. Only a group without members can
    /// go (NON_EMPTY_GROUP otherwise, as Kafka answers); an unknown one is GROUP_ID_NOT_FOUND.
    pub fn delete(&self, group_id: &str) -> std::io::Result<i16> {
        let mut groups = self.groups();
        if groups
            .get(group_id)
            .is_some_and(|e| !e.group.members.is_empty())
        {
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
        let group = &groups.get(group_id)?.group;
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
            .map(|(name, e)| {
                (
                    name.clone(),
                    e.group.protocol_type.clone(),
                    e.group.state.name(),
                )
            })
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

    #[test]
    fn the_expiry_task_is_told_when_there_is_something_to_expire() {
        let (_dir, coordinator) = coordinator(Duration::ZERO);
        let runtime = runtime();
        assert!(!coordinator.has_members());
        let joined = runtime.block_on(coordinator.join(join_request("a")));
        assert!(coordinator.has_members());
        // The join left a permit: a task that looked before it and waits now is woken.
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), coordinator.member_joined())
                .await
                .expect("the join is announced")
        });
        assert_eq!(
            coordinator.leave("g", MemberRef::dynamic(&joined.member_id)),
            codes::NONE
        );
        assert!(!coordinator.has_members());
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
