//! Redis Sentinel: a worker on `sentinel://` URLs follows a failover. Real
//! `redis-server` master and replica and two real sentinels
//! (`redis-server --sentinel`), all on 127.0.0.1 on free ports.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::Commands;

use crate::util::{eventually, free_port, plugin_folder, Worker};

const MASTER_NAME: &str = "mymaster";

/// A `redis-server` process, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis_server(dir: &Path, port: u16, extra: &[&str]) -> Server {
    let dir = dir.join(port.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server must be installed");
    Server(child)
}

fn sentinel(dir: &Path, port: u16, master_port: u16) -> Server {
    let config = dir.join(format!("sentinel-{port}.conf"));
    std::fs::write(
        &config,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {dir}\nsentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 1\n\
             sentinel down-after-milliseconds {MASTER_NAME} 1000\nsentinel failover-timeout {MASTER_NAME} 10000\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("redis-server").arg(&config).arg("--sentinel").stdout(Stdio::null()).spawn().unwrap();
    Server(child)
}

fn connection(port: u16) -> Option<redis::Connection> {
    redis::Client::open(format!("redis://127.0.0.1:{port}/0")).ok()?.get_connection().ok()
}

/// What a sentinel says about the master: its port, and how many replicas
/// and other sentinels it knows.
fn sentinel_view(port: u16) -> Option<(u16, usize, usize)> {
    let mut connection = connection(port)?;
    let (_, master): (String, u16) = redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg(MASTER_NAME).query(&mut connection).ok()?;
    let replicas: Vec<redis::Value> = redis::cmd("SENTINEL").arg("replicas").arg(MASTER_NAME).query(&mut connection).ok()?;
    let sentinels: Vec<redis::Value> = redis::cmd("SENTINEL").arg("sentinels").arg(MASTER_NAME).query(&mut connection).ok()?;
    Some((master, replicas.len(), sentinels.len()))
}

/// Results stored on the server at `port`, by status.
fn results(port: u16, ids: &[String]) -> (usize, usize) {
    let Some(mut connection) = connection(port) else { return (0, 0) };
    let keys: Vec<String> = ids.iter().map(|id| chard::protocol::result_key(id)).collect();
    let values: Vec<Option<String>> = connection.mget(&keys).unwrap_or_default();
    let stored = values.iter().flatten().count();
    let succeeded = values.iter().flatten().filter(|value| value.contains("\"SUCCESS\"")).count();
    (stored, succeeded)
}

#[test]
fn the_worker_follows_a_sentinel_failover_under_load_and_loses_no_job() {
    let dir = tempfile::tempdir().unwrap();
    let (master_port, replica_port) = (free_port(), free_port());
    let master = redis_server(dir.path(), master_port, &[]);
    eventually(Duration::from_secs(10), "the master", || connection(master_port));
    let _replica = redis_server(dir.path(), replica_port, &["--replicaof", "127.0.0.1", &master_port.to_string()]);
    eventually(Duration::from_secs(20), "the replica in sync", || {
        let info: String = redis::cmd("INFO").arg("replication").query(&mut connection(replica_port)?).ok()?;
        info.contains("master_link_status:up").then_some(())
    });
    let sentinel_ports = [free_port(), free_port()];
    let _sentinels: Vec<Server> = sentinel_ports.iter().map(|port| sentinel(dir.path(), *port, master_port)).collect();
    eventually(Duration::from_secs(30), "sentinels that know the replica and each other", || {
        sentinel_ports.iter().all(|port| sentinel_view(*port) == Some((master_port, 1, 1))).then_some(())
    });

    let url = format!("sentinel://127.0.0.1:{};sentinel://127.0.0.1:{}/0?master_name={MASTER_NAME}", sentinel_ports[0], sentinel_ports[1]);
    let plugins = plugin_folder(&["faults"]);
    let worker = Worker::start(plugins.path(), &url, &["-v", "-c", "2", "--visibility-timeout", "5"]);

    // Load: 1,000 jobs of 5 ms each, queued on the master and replicated.
    let jobs = 1000;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let master_url = format!("redis://127.0.0.1:{master_port}/0");
    let ids: Vec<String> = runtime.block_on(async {
        let client = chard::client::Client::connect(&master_url, &master_url).await.unwrap();
        let tasks: Vec<_> = (0..jobs).map(|_| client.task("faults.sleep", serde_json::json!([5]), serde_json::json!({})).unwrap()).collect();
        let ids = tasks.iter().map(|task| task.id.clone()).collect();
        client.send_all(tasks).await.unwrap();
        ids
    });
    let _: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut connection(master_port).unwrap()).unwrap();
    eventually(Duration::from_secs(30), "the worker under way", || (results(master_port, &ids).0 >= 100).then_some(()));

    // Kill the master mid-run.
    let done_before = results(master_port, &ids).0;
    drop(master);
    let killed = Instant::now();
    eventually(Duration::from_secs(60), "the replica promoted", || {
        sentinel_ports.iter().all(|port| sentinel_view(*port).map(|view| view.0) == Some(replica_port)).then_some(())
    });
    let promoted = killed.elapsed();
    let (stored, succeeded) = eventually(Duration::from_secs(120), "every job's result on the new master", || {
        let (stored, succeeded) = results(replica_port, &ids);
        (stored == jobs).then_some((stored, succeeded))
    });
    let runs = worker.log().matches("succeeded id=").count();
    eprintln!(
        "figure: sentinel failover under load: {jobs} jobs, {done_before} done when the master was killed, promoted after {:.1} s, \
         all done {:.1} s after the kill; {runs} runs, so {} ran twice; {} lost",
        promoted.as_secs_f64(),
        killed.elapsed().as_secs_f64(),
        runs.saturating_sub(jobs),
        jobs - stored
    );
    assert_eq!((stored, succeeded), (jobs, jobs), "no job lost, every one succeeded");
    assert!(worker.log().contains("sentinel: the master moved"), "{}", worker.log());
    assert_eq!(results(replica_port, &ids).0, jobs);
}
