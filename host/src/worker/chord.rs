//! Chord joins, for the completer: record each finished header member,
//! and for the one that completes its chord, read the header's results
//! and fire (or fail) the body.
//!
//! Two things make this more than one script call:
//!
//! - **The header size can come late.** Celery's `group._apply_tasks`
//!   records a chord's size just before it sends the header's *last*
//!   member, after the others are on the queue. A fast worker can finish
//!   all of those first; they see no size and leave the chord to a later
//!   member. When the last member adds nothing (an empty chord or group in
//!   the header), no member reports after the size is set and Celery itself
//!   never fires the body. Here a member that finds no size checks again a
//!   little later (one check per chord at a time, backing off to once a
//!   second, for at most five minutes, and for at most 10,000 chords at
//!   once): the check records nothing new, it only completes the chord
//!   once the size is there. A worker that stops
//!   while checking leaves that chord as Celery would.
//! - **A header holding a group result is joined as Celery joins it.** When
//!   whoever applied the chord saved the header's `GroupResult`, the body
//!   gets the nested results that structure gives, read from each member's
//!   result document (`protocol::group_result`), and a failure is Celery's
//!   `ChordError("Join error: ...")`. If a member's result is not stored
//!   yet the join waits for it as Celery's does (3 s, then `TimeoutError`),
//!   in a task of its own so the completer goes on.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::persist::{persist, write_isolating};
use super::plan::{self, ChordFiring, ChordMember, HeaderResults};
use super::Shared;
use crate::backend::{BackendError, ChordJoin, ResultBackend};
use crate::broker::Broker;
use crate::protocol::group_result::{join_timeout, Joined, SavedHeader};
use crate::protocol::{result_key, ExceptionInfo};

/// Celery's `result_chord_join_timeout` default.
const JOIN_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a waiting join reads the members again (Celery's interval).
const JOIN_INTERVAL: Duration = Duration::from_millis(500);
/// Checks for a size that has not come yet: the first delay, the longest,
/// and when to give up.
const SIZE_CHECK_FIRST: Duration = Duration::from_millis(20);
const SIZE_CHECK_MAX: Duration = Duration::from_secs(1);
const SIZE_CHECK_GIVE_UP: Duration = Duration::from_secs(300);
/// Chords checked at once, at most: messages naming chords whose size never
/// comes (a flood of them is cheap to write to the queue) must not grow the
/// worker's tasks and its Redis calls without bound. Past it a member is
/// left to a later member, as Celery leaves it.
const SIZE_CHECKS_MAX: usize = 10_000;

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Joins `members` (each with the index of the finished job it belongs
/// to, `None` for a later check) and fires the chords they complete,
/// then the chords those bodies' failures report to. Returns the jobs
/// whose member Redis refused for good, with the reason; their chords have
/// been failed.
///
/// Boxed: a join can start a check that joins again (the type would be
/// its own).
pub(super) fn join_chords<'a, B: Broker, R: ResultBackend>(
    shared: &'a Arc<Shared<B>>,
    backend: &'a R,
    members: Vec<(Option<usize>, ChordMember)>,
) -> Boxed<'a, Vec<(usize, String)>> {
    Box::pin(async move {
        let mut queue: VecDeque<(Option<usize>, ChordMember)> = members.into();
        let mut refused = Vec::new();
        while let Some((job, member)) = queue.pop_front() {
            let joined = persist(shared.metrics.as_deref(), "join chord", || backend.chord_join(&member.part)).await;
            let (further, refusal) = settle(shared, backend, member, joined).await;
            if let (Some(job), Some(reason)) = (job, refusal) {
                refused.push((job, reason));
            }
            queue.extend(further.into_iter().map(|member| (job, member)));
        }
        refused
    })
}

/// Acts on what one member's join said. Returns the chords to join next,
/// and the reason when Redis refused the join for good.
async fn settle<B: Broker, R: ResultBackend>(
    shared: &Arc<Shared<B>>,
    backend: &R,
    member: ChordMember,
    joined: Result<ChordJoin, BackendError>,
) -> (Vec<ChordMember>, Option<String>) {
    match joined {
        Ok(ChordJoin::Complete { entries, saved: None }) => {
            let firing = plan::fire_chord(&member, HeaderResults::Entries(&entries), &shared.settings);
            (finish(shared, backend, &member, firing, entries.len()).await, None)
        }
        Ok(ChordJoin::Complete { entries, saved: Some(saved) }) => {
            let header = SavedHeader::parse(&saved);
            match read_saved(shared, backend, &header).await {
                Some(joined) => {
                    let firing = plan::fire_chord(&member, HeaderResults::Joined(joined), &shared.settings);
                    (finish(shared, backend, &member, firing, entries.len()).await, None)
                }
                None => {
                    wait_for_members(shared.clone(), backend.clone(), member, header, entries.len());
                    (Vec::new(), None)
                }
            }
        }
        Ok(ChordJoin::SizeUnknown) => {
            check_later(shared.clone(), backend.clone(), member);
            (Vec::new(), None)
        }
        Ok(ChordJoin::Open | ChordJoin::Done) => (Vec::new(), None),
        Err(error) => {
            let reason = format!("Redis refused the chord join of group {:?}: {error}", member.part.group_id);
            tracing::error!(id = %member.part.task_id, "{reason}");
            // This member can never be counted, so the chord could never
            // complete: it ends now, its body failed.
            let firing = plan::chord_join_failed(&member, &reason, &shared.settings);
            (finish(shared, backend, &member, firing, 0).await, Some(reason))
        }
    }
}

/// Joins a saved header once: `None` while a member's result is missing.
async fn read_saved<B, R: ResultBackend>(shared: &Shared<B>, backend: &R, header: &SavedHeader) -> Option<Result<Vec<Value>, ExceptionInfo>> {
    let ids = header.task_ids();
    let keys: Vec<String> = ids.iter().map(|id| result_key(id)).collect();
    let documents = match persist(shared.metrics.as_deref(), "read chord header results", || backend.get_many(&keys)).await {
        Ok(documents) => documents,
        Err(error) => return Some(Err(ExceptionInfo::new("redis.exceptions", "ResponseError", error.to_string()))),
    };
    let metas: HashMap<String, Value> = ids
        .iter()
        .zip(documents)
        .filter_map(|(id, document)| Some((id.to_string(), serde_json::from_str(&document?).ok()?)))
        .collect();
    match header.join(&metas) {
        Joined::Values(values) => Some(Ok(values)),
        Joined::Raised(exception) => Some(Err(exception)),
        Joined::Waiting(_) => None,
    }
}

/// The chord is claimed but some member results are not stored yet: wait
/// for them as Celery's join does, then fire, in a task of its own.
fn wait_for_members<B: Broker, R: ResultBackend>(shared: Arc<Shared<B>>, backend: R, member: ChordMember, header: SavedHeader, members: usize) {
    let task: Boxed<'static, ()> = Box::pin(async move {
        let deadline = Instant::now() + JOIN_TIMEOUT;
        let joined = loop {
            tokio::time::sleep(JOIN_INTERVAL.min(deadline.saturating_duration_since(Instant::now()))).await;
            if let Some(joined) = read_saved(&shared, &backend, &header).await {
                break joined;
            }
            if Instant::now() >= deadline {
                break Err(join_timeout(JOIN_TIMEOUT.as_secs_f64()));
            }
        };
        let firing = plan::fire_chord(&member, HeaderResults::Joined(joined), &shared.settings);
        let further = finish(&shared, &backend, &member, firing, members).await;
        join_chords(&shared, &backend, further.into_iter().map(|member| (None, member)).collect()).await;
    });
    tokio::spawn(task);
}

/// No size yet for this member's chord: check again later, unless a check
/// for the same chord is already on its way.
fn check_later<B: Broker, R: ResultBackend>(shared: Arc<Shared<B>>, backend: R, member: ChordMember) {
    {
        let mut checks = shared.chord_checks.lock().unwrap();
        if checks.len() >= SIZE_CHECKS_MAX {
            tracing::warn!(group = %member.part.group_id, "{SIZE_CHECKS_MAX} chords already wait for their size; this one is left to a later member");
            return;
        }
        if !checks.insert(member.part.group_id.clone()) {
            return;
        }
    }
    let task: Boxed<'static, ()> = Box::pin(async move {
        let group_id = member.part.group_id.clone();
        let started = Instant::now();
        let mut delay = SIZE_CHECK_FIRST;
        let joined = loop {
            tokio::time::sleep(delay).await;
            match backend.chord_join(&member.part).await {
                Ok(ChordJoin::SizeUnknown) if started.elapsed() < SIZE_CHECK_GIVE_UP => delay = (delay * 2).min(SIZE_CHECK_MAX),
                Err(error) if !error.is_permanent() && started.elapsed() < SIZE_CHECK_GIVE_UP => delay = SIZE_CHECK_MAX,
                joined => break joined,
            }
        };
        // A new check may start for a later member from here on.
        shared.chord_checks.lock().unwrap().remove(&group_id);
        if matches!(joined, Ok(ChordJoin::SizeUnknown)) {
            tracing::warn!(group = %group_id, "no size was recorded for this chord within {SIZE_CHECK_GIVE_UP:?}; its body is left to a later member");
            return;
        }
        let (further, _) = settle(&shared, &backend, member, joined).await;
        join_chords(&shared, &backend, further.into_iter().map(|member| (None, member)).collect()).await;
    });
    tokio::spawn(task);
}

/// Writes a firing: sizes and saved headers of the chords the body starts,
/// the body's messages, its failure, and the chord's "done" marker.
/// Returns the chords that chain steps failed with the body report to.
async fn finish<B: Broker, R: ResultBackend>(shared: &Shared<B>, backend: &R, member: &ChordMember, firing: ChordFiring, members: usize) -> Vec<ChordMember> {
    let ttl = shared.settings.result_expires;
    let group_id = &member.part.group_id;
    if let Err(error) = persist(shared.metrics.as_deref(), "record chord sizes", || backend.set_chord_sizes(&firing.chord_sizes, ttl)).await {
        tracing::error!(%error, group = %group_id, "cannot record the sizes of the chords the body starts");
    }
    if let Err(error) = persist(shared.metrics.as_deref(), "save chord headers", || backend.save_group_results(&firing.saved_headers, ttl)).await {
        tracing::error!(%error, group = %group_id, "cannot save the header results of the chords the body starts");
    }
    let body_refused = write_isolating(shared.metrics.as_deref(), "publish chord body", &firing.publish, &vec![0; firing.publish.len()], |(key, _)| key, |batch| shared.broker.publish(batch)).await;
    for refusal in body_refused {
        tracing::error!(group = %group_id, key = %refusal.key, "cannot publish the chord body: {}", refusal.error);
    }
    if let Err(error) = persist(shared.metrics.as_deref(), "store chord failure", || backend.store(&firing.writes)).await {
        tracing::error!(%error, group = %group_id, "cannot store the chord's failure");
    }
    if let Err(error) = persist(shared.metrics.as_deref(), "finish chord", || backend.chord_done(group_id)).await {
        tracing::error!(%error, group = %group_id, "cannot mark the chord done");
    }
    tracing::info!(group = %group_id, members, failed = !firing.writes.is_empty(), "chord complete");
    firing.chords
}
