//! A worker frozen (SIGSTOP) past the visibility timeout: what the README's
//! "a long job is never handed to a second worker while its own worker
//! lives" does and does not cover.

use std::time::Duration;

use redis::Commands;

use crate::util::{eventually, host, plugin_folder, RedisServer, Worker};

#[test]
fn a_worker_frozen_past_the_visibility_timeout_loses_its_job_to_another_and_both_run_it() {
    let redis = RedisServer::start();
    let url = redis.url(0);
    let plugins = plugin_folder(&["faults"]);
    let mut connection = redis.connection(0);
    let args = |name: &'static str| ["-v", "-c", "1", "--visibility-timeout", "2", "-n", name];
    let frozen = Worker::start(plugins.path(), &url, &args("a@frozen"));
    let id = host(&["submit", "faults.sleep", "[3000]", "--broker", &url]).ok().to_string();
    eventually(Duration::from_secs(10), "worker a holds the job", || {
        let held: usize = connection.hlen("unacked").unwrap();
        (held == 1).then_some(())
    });
    frozen.signal("STOP");

    // Nobody renews the lease: after the visibility timeout another worker
    // restores the message and runs it.
    let other = Worker::start(plugins.path(), &url, &args("b@frozen"));
    let ran = format!("succeeded id={id}");
    other.wait_for_log(&ran, Duration::from_secs(30));
    // The log line comes when the job ends; the completer stores the result
    // just after it.
    assert_eq!(host(&["result", &id, "--wait", "--timeout", "10", "--broker", &url]).ok(), "SUCCESS 3000");

    // The frozen worker, resumed, finishes its copy too: the job ran twice.
    // Its ack and lease renewal find nothing to touch (delivery tags are
    // per worker), and nothing is left behind.
    frozen.signal("CONT");
    frozen.wait_for_log(&ran, Duration::from_secs(30));
    let runs = frozen.log().matches(&ran).count() + other.log().matches(&ran).count();
    eprintln!("figure: runs of one job whose worker was frozen past the visibility timeout: {runs}");
    assert_eq!(runs, 2);
    eventually(Duration::from_secs(10), "nothing held", || {
        let held: usize = connection.hlen("unacked").unwrap();
        let queued: usize = connection.llen("celery").unwrap();
        (held == 0 && queued == 0).then_some(())
    });
    assert_eq!(host(&["result", &id, "--broker", &url]).ok(), "SUCCESS 3000");
}
