//! The group APIs on the wire: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, mapped onto [`super::coordinator`].

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::acl::{Operation, Resource};
use super::broker::{Broker, RequestContext};
use super::codes;
use super::committed_offsets::Committed;
use super::coordinator::{JoinRequest, MemberRef};

/// FindCoordinator's key type for a consumer group (1 is a transaction).
const GROUP_KEY: i8 = 0;

/// One partition's answer in OffsetFetch.
struct CommittedPartition {
    index: i32,
    /// -1: nothing committed.
    offset: i64,
    metadata: Option<StrBytes>,
    error: i16,
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

impl Broker {
    pub(super) fn find_coordinator(
        &self,
        request: FindCoordinatorRequest,
        cx: &RequestContext,
    ) -> FindCoordinatorResponse {
        let version = cx.version;
        if version >= 4 {
            let coordinators = request
                .coordinator_keys
                .iter()
                .map(|key| {
                    let entry = CoordinatorEntry::default().with_key(key.clone());
                    let group = Resource::Group(key);
                    if request.key_type == GROUP_KEY && !self.may(cx, Operation::Describe, group) {
                        return entry
                            .with_node_id(BrokerId(-1))
                            .with_port(-1)
                            .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
                            .with_error_message(Some(self.refusal(
                                cx,
                                Operation::Describe,
                                group,
                            )));
                    }
                    entry
                        .with_node_id(BrokerId(0))
                        .with_host(cx.endpoint.host.clone())
                        .with_port(cx.endpoint.port)
                })
                .collect();
            return FindCoordinatorResponse::default().with_coordinators(coordinators);
        }
        let group = Resource::Group(&request.key);
        if request.key_type == GROUP_KEY && !self.may(cx, Operation::Describe, group) {
            return FindCoordinatorResponse::default()
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
                .with_error_message(Some(self.refusal(cx, Operation::Describe, group)));
        }
        FindCoordinatorResponse::default()
            .with_node_id(BrokerId(0))
            .with_host(cx.endpoint.host.clone())
            .with_port(cx.endpoint.port)
    }

    pub(super) async fn join_group(
        self: &Arc<Self>,
        request: JoinGroupRequest,
        cx: &RequestContext,
    ) -> JoinGroupResponse {
        let version = cx.version;
        let session = Duration::from_millis(request.session_timeout_ms.max(0) as u64);
        // v0 has no rebalance timeout: the session timeout stands in, as in Kafka.
        let rebalance = if version >= 1 {
            Duration::from_millis(request.rebalance_timeout_ms.max(0) as u64)
        } else {
            session
        };
        if !self.may(cx, Operation::Read, Resource::Group(&request.group_id)) {
            return JoinGroupResponse::default()
                .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
                .with_generation_id(-1)
                .with_member_id(request.member_id);
        }
        if !(Duration::from_millis(1000)..=Duration::from_secs(30 * 60)).contains(&session) {
            return JoinGroupResponse::default()
                .with_error_code(codes::INVALID_SESSION_TIMEOUT)
                .with_generation_id(-1)
                .with_member_id(request.member_id);
        }
        let joined = self
            .groups
            .join(JoinRequest {
                group: request.group_id.0.to_string(),
                member_id: request.member_id.to_string(),
                group_instance_id: request.group_instance_id.map(|s| s.to_string()),
                client_id: cx.client_id.clone(),
                client_host: cx.peer.ip().to_string(),
                session_timeout: session,
                rebalance_timeout: rebalance,
                protocol_type: request.protocol_type.to_string(),
                protocols: request
                    .protocols
                    .into_iter()
                    .map(|p| (p.name.to_string(), p.metadata))
                    .collect(),
                require_member_id: version >= 4,
            })
            .await;
        JoinGroupResponse::default()
            .with_error_code(joined.error)
            .with_generation_id(joined.generation)
            .with_protocol_type(Some(text(&joined.protocol_type)))
            .with_protocol_name(Some(text(&joined.protocol)))
            .with_leader(text(&joined.leader))
            .with_member_id(text(&joined.member_id))
            .with_members(
                joined
                    .members
                    .into_iter()
                    .map(|(id, instance, metadata)| {
                        JoinGroupResponseMember::default()
                            .with_member_id(text(&id))
                            .with_group_instance_id(instance.map(|i| text(&i)))
                            .with_metadata(metadata)
                    })
                    .collect(),
            )
    }

    pub(super) async fn sync_group(
        self: &Arc<Self>,
        request: SyncGroupRequest,
        cx: &RequestContext,
    ) -> SyncGroupResponse {
        if !self.may(cx, Operation::Read, Resource::Group(&request.group_id)) {
            return SyncGroupResponse::default()
                .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
                .with_protocol_type(request.protocol_type)
                .with_protocol_name(request.protocol_name);
        }
        let (error, assignment) = self
            .groups
            .sync(
                &request.group_id.0,
                MemberRef {
                    id: &request.member_id,
                    instance: request.group_instance_id.as_deref(),
                },
                request.generation_id,
                request
                    .assignments
                    .into_iter()
                    .map(|a| (a.member_id.to_string(), a.assignment))
                    .collect(),
            )
            .await;
        SyncGroupResponse::default()
            .with_error_code(error)
            .with_protocol_type(request.protocol_type)
            .with_protocol_name(request.protocol_name)
            .with_assignment(assignment)
    }

    pub(super) fn heartbeat(
        &self,
        request: HeartbeatRequest,
        cx: &RequestContext,
    ) -> HeartbeatResponse {
        if !self.may(cx, Operation::Read, Resource::Group(&request.group_id)) {
            return HeartbeatResponse::default().with_error_code(codes::GROUP_AUTHORIZATION_FAILED);
        }
        HeartbeatResponse::default().with_error_code(self.groups.heartbeat(
            &request.group_id.0,
            MemberRef {
                id: &request.member_id,
                instance: request.group_instance_id.as_deref(),
            },
            request.generation_id,
        ))
    }

    pub(super) fn leave_group(
        &self,
        request: LeaveGroupRequest,
        cx: &RequestContext,
    ) -> LeaveGroupResponse {
        let version = cx.version;
        let group = &request.group_id.0;
        if !self.may(cx, Operation::Read, Resource::Group(group)) {
            return LeaveGroupResponse::default()
                .with_error_code(codes::GROUP_AUTHORIZATION_FAILED);
        }
        if version < 3 {
            return LeaveGroupResponse::default().with_error_code(
                self.groups
                    .leave(group, MemberRef::dynamic(&request.member_id)),
            );
        }
        let members = request
            .members
            .iter()
            .map(|m| {
                MemberResponse::default()
                    .with_member_id(m.member_id.clone())
                    .with_group_instance_id(m.group_instance_id.clone())
                    .with_error_code(self.groups.leave(
                        group,
                        MemberRef {
                            id: &m.member_id,
                            instance: m.group_instance_id.as_deref(),
                        },
                    ))
            })
            .collect();
        LeaveGroupResponse::default().with_members(members)
    }

    pub(super) fn offset_commit(
        &self,
        request: OffsetCommitRequest,
        cx: &RequestContext,
    ) -> OffsetCommitResponse {
        let group = request.group_id.0.to_string();
        let allowed = if self.may(cx, Operation::Read, Resource::Group(&group)) {
            self.groups.may_commit(
                &group,
                MemberRef {
                    id: &request.member_id,
                    instance: request.group_instance_id.as_deref(),
                },
                request.generation_id_or_member_epoch,
            )
        } else {
            codes::GROUP_AUTHORIZATION_FAILED
        };
        tracing::debug!(group, member = %request.member_id.as_str(), generation = request.generation_id_or_member_epoch, allowed, "kafka: offset commit");
        let mut accepted = Vec::new();
        let mut topics: Vec<OffsetCommitResponseTopic> = request
            .topics
            .iter()
            .map(|topic| {
                let name = topic.name.0.to_string();
                let readable =
                    allowed != codes::NONE || self.may(cx, Operation::Read, Resource::Topic(&name));
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let known = self.partition(&name, p.partition_index).is_some();
                        let code = if allowed != codes::NONE {
                            allowed
                        } else if !readable {
                            codes::TOPIC_AUTHORIZATION_FAILED
                        } else if !known {
                            codes::UNKNOWN_TOPIC_OR_PARTITION
                        } else {
                            accepted.push((
                                name.clone(),
                                p.partition_index,
                                Committed {
                                    offset: p.committed_offset,
                                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                                },
                            ));
                            codes::NONE
                        };
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        if !accepted.is_empty()
            && let Err(e) = self.groups.offsets.commit(&group, accepted)
        {
            tracing::error!(group, error = %e, "kafka: cannot make committed offsets durable");
            for topic in &mut topics {
                for p in &mut topic.partitions {
                    if p.error_code == codes::NONE {
                        p.error_code = codes::KAFKA_STORAGE_ERROR;
                    }
                }
            }
        }
        OffsetCommitResponse::default().with_topics(topics)
    }

    pub(super) fn offset_fetch(
        &self,
        request: OffsetFetchRequest,
        cx: &RequestContext,
    ) -> OffsetFetchResponse {
        let version = cx.version;
        if version >= 8 {
            let groups = request
                .groups
                .iter()
                .map(|g| {
                    let answer =
                        OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                    if !self.may(cx, Operation::Describe, Resource::Group(&g.group_id)) {
                        return answer.with_error_code(codes::GROUP_AUTHORIZATION_FAILED);
                    }
                    let topics = g.topics.as_ref().map(|topics| {
                        topics
                            .iter()
                            .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                            .collect()
                    });
                    let topics = self
                        .committed_offsets(&g.group_id.0, topics, cx)
                        .into_iter()
                        .map(|(name, partitions)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(name)
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|p| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p.index)
                                                .with_committed_offset(p.offset)
                                                .with_metadata(p.metadata)
                                                .with_error_code(p.error)
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                    answer.with_topics(topics)
                })
                .collect();
            return OffsetFetchResponse::default().with_groups(groups);
        }
        let topics = request.topics.map(|topics| {
            topics
                .into_iter()
                .map(|t| (t.name, t.partition_indexes))
                .collect()
        });
        if !self.may(cx, Operation::Describe, Resource::Group(&request.group_id)) {
            // v2+ carries the error for the whole group; v0 and v1 only per partition.
            let partitions = |indexes: &Vec<i32>| {
                indexes
                    .iter()
                    .map(|&i| {
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(i)
                            .with_committed_offset(-1)
                            .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
                    })
                    .collect()
            };
            let topics: Vec<(TopicName, Vec<i32>)> = topics.unwrap_or_default();
            return OffsetFetchResponse::default()
                .with_error_code(codes::GROUP_AUTHORIZATION_FAILED)
                .with_topics(
                    topics
                        .iter()
                        .map(|(name, indexes)| {
                            OffsetFetchResponseTopic::default()
                                .with_name(name.clone())
                                .with_partitions(partitions(indexes))
                        })
                        .collect(),
                );
        }
        let topics = self
            .committed_offsets(&request.group_id.0, topics, cx)
            .into_iter()
            .map(|(name, partitions)| {
                OffsetFetchResponseTopic::default()
                    .with_name(name)
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|p| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(p.index)
                                    .with_committed_offset(p.offset)
                                    .with_metadata(p.metadata)
                                    .with_error_code(p.error)
                            })
                            .collect(),
                    )
            })
            .collect();
        OffsetFetchResponse::default().with_topics(topics)
    }

    /// The committed offset of each wanted partition, or of every partition the group has
    /// committed when `wanted` is `None`. A topic the client may not see is left out of "every
    /// partition", and answered TOPIC_AUTHORIZATION_FAILED when named.
    fn committed_offsets(
        &self,
        group: &str,
        wanted: Option<Vec<(TopicName, Vec<i32>)>>,
        cx: &RequestContext,
    ) -> Vec<(TopicName, Vec<CommittedPartition>)> {
        let named = wanted.is_some();
        wanted
            .unwrap_or_else(|| self.committed_topics(group))
            .into_iter()
            .filter_map(|(name, indexes)| {
                let topic = Resource::Topic(&name.0);
                let visible = if named {
                    self.may(cx, Operation::Describe, topic)
                } else {
                    self.policy.allows(cx.who(), Operation::Describe, topic)
                };
                if !visible && !named {
                    return None;
                }
                let partitions = indexes
                    .into_iter()
                    .map(|index| {
                        if !visible {
                            return CommittedPartition {
                                index,
                                offset: -1,
                                metadata: None,
                                error: codes::TOPIC_AUTHORIZATION_FAILED,
                            };
                        }
                        let committed = self.groups.offsets.get(group, &name.0, index);
                        CommittedPartition {
                            index,
                            offset: committed.as_ref().map_or(-1, |c| c.offset),
                            metadata: committed.and_then(|c| c.metadata).map(|m| text(&m)),
                            error: codes::NONE,
                        }
                    })
                    .collect();
                Some((name, partitions))
            })
            .collect()
    }

    /// Every (topic, partitions) a group has committed offsets for.
    fn committed_topics(&self, group: &str) -> Vec<(TopicName, Vec<i32>)> {
        let mut out: Vec<(TopicName, Vec<i32>)> = Vec::new();
        for (topic, partition, _) in self.groups.offsets.of_group(group) {
            match out.iter_mut().find(|(t, _)| *t.0 == *topic) {
                Some((_, parts)) => parts.push(partition),
                None => out.push((TopicName(text(&topic)), vec![partition])),
            }
        }
        out
    }

    pub(super) fn describe_groups(
        &self,
        request: DescribeGroupsRequest,
        cx: &RequestContext,
    ) -> DescribeGroupsResponse {
        let groups = request
            .groups
            .iter()
            .map(|id| {
                let described = DescribedGroup::default().with_group_id(id.clone());
                if !self.may(cx, Operation::Describe, Resource::Group(id)) {
                    return described.with_error_code(codes::GROUP_AUTHORIZATION_FAILED);
                }
                match self.groups.describe(&id.0) {
                    None => described
                        .with_group_state(text("Dead"))
                        .with_error_code(codes::NONE),
                    Some((state, protocol_type, protocol, members)) => described
                        .with_group_state(text(state))
                        .with_protocol_type(text(&protocol_type))
                        .with_protocol_data(text(&protocol))
                        .with_members(
                            members
                                .into_iter()
                                .map(|(id, instance, client, host, metadata, assignment)| {
                                    DescribedGroupMember::default()
                                        .with_member_id(text(&id))
                                        .with_group_instance_id(instance.map(|i| text(&i)))
                                        .with_client_id(text(&client))
                                        .with_client_host(text(&host))
                                        .with_member_metadata(metadata)
                                        .with_member_assignment(assignment)
                                })
                                .collect(),
                        ),
                }
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    pub(super) fn list_groups(
        &self,
        _request: ListGroupsRequest,
        cx: &RequestContext,
    ) -> ListGroupsResponse {
        // Only the groups the client may see, as Kafka lists them.
        let groups = self
            .groups
            .list()
            .into_iter()
            .filter(|(name, _, _)| {
                self.policy
                    .allows(cx.who(), Operation::Describe, Resource::Group(name))
            })
            .map(|(name, protocol_type, state)| {
                ListedGroup::default()
                    .with_group_id(GroupId(text(&name)))
                    .with_protocol_type(text(&protocol_type))
                    .with_group_state(text(state))
            })
            .collect();
        ListGroupsResponse::default().with_groups(groups)
    }

    pub(super) fn delete_groups(
        &self,
        request: DeleteGroupsRequest,
        cx: &RequestContext,
    ) -> DeleteGroupsResponse {
        let results = request
            .groups_names
            .into_iter()
            .map(|group| {
                if !self.may(cx, Operation::Delete, Resource::Group(&group)) {
                    return DeletableGroupResult::default()
                        .with_group_id(group)
                        .with_error_code(codes::GROUP_AUTHORIZATION_FAILED);
                }
                let code = match self.groups.delete(&group) {
                    Ok(code) => code,
                    Err(e) => {
                        tracing::error!(group = %group.as_str(), error = %e, "kafka: cannot delete group offsets");
                        codes::KAFKA_STORAGE_ERROR
                    }
                };
                if code == codes::NONE {
                    tracing::info!(group = %group.as_str(), "kafka: group deleted");
                }
                DeletableGroupResult::default()
                    .with_group_id(group)
                    .with_error_code(code)
            })
            .collect();
        DeleteGroupsResponse::default().with_results(results)
    }
}
