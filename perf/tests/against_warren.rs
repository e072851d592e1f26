//! The load tool against a real `warren` binary: a short throughput run with every message
//! accounted for, and the memory scenarios reading the broker's /proc entry.
//!
//! The broker is `WARREN_BIN`, or the `warren` of the same cargo profile as this test
//! (`cargo build -p warren` first).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use warren_perf::{memory, throughput, PerfCli, PerfCommand};

struct Warren {
    child: Child,
    port: u16,
}

impl Warren {
    fn start() -> Warren {
        let binary = warren_binary();
        assert!(
            binary.is_file(),
            "no warren binary at {}: build it with `cargo build -p warren` or set WARREN_BIN",
            binary.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let data_dir =
            std::env::temp_dir().join(format!("warren-perf-test-{}-{port}", std::process::id()));
        let child = Command::new(&binary)
            .args(["server", "--amqp", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start warren");
        let mut w = Warren { child, port };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = w.child.try_wait() {
                panic!("warren exited during startup with {status}");
            }
            assert!(Instant::now() < deadline, "warren did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        w
    }

    fn uri(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Warren {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn warren_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("WARREN_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let name = format!("warren{}", std::env::consts::EXE_SUFFIX);
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(Path::parent).map(|d| d.join(&name)))
        .unwrap_or_else(|| Path::new("../target/debug").join(name))
}

fn parse(args: &[&str]) -> PerfCommand {
    let mut argv = vec!["warren-perf"];
    argv.extend_from_slice(args);
    PerfCli::try_parse_from(argv)
        .expect("valid arguments")
        .command
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn throughput_run_delivers_every_message_and_reports_rates() {
    let warren = Warren::start();
    let uri = warren.uri();
    let pid = warren.pid().to_string();
    let PerfCommand::Throughput(args) = parse(&[
        "throughput",
        "--uri",
        &uri,
        "-x",
        "2",
        "-y",
        "2",
        "-s",
        "100",
        "--pmessages",
        "10000",
        "--confirm",
        "500",
        "--prefetch",
        "50",
        "--pid",
        &pid,
        "--json",
    ]) else {
        unreachable!()
    };
    let report = runtime()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(60), throughput::run(&args)).await
        })
        .expect("run finishes")
        .expect("run succeeds");
    assert_eq!(report.sent, 20_000);
    assert_eq!(report.received, 20_000);
    assert_eq!(report.confirmed, 20_000);
    assert_eq!(report.nacked, 0);
    assert!(report.send_rate() > 0.0 && report.receive_rate() > 0.0);
    assert_eq!(report.latency.count, 20_000);
    assert!(report.latency.p50 > 0 && report.latency.p99 >= report.latency.p50);
    assert!(report.broker_cpu.is_some() && report.broker_cpu_us_per_msg().is_some());
    let json = report.to_json(&args);
    assert_eq!(json["received"], 20_000);
}

#[test]
fn fanout_run_counts_one_delivery_per_queue() {
    let warren = Warren::start();
    let uri = warren.uri();
    let PerfCommand::Throughput(args) = parse(&[
        "throughput",
        "--uri",
        &uri,
        "-y",
        "3",
        "--queues",
        "3",
        "--exchange",
        "perf-fanout",
        "--exchange-type",
        "fanout",
        "--auto-ack",
        "--pmessages",
        "5000",
    ]) else {
        unreachable!()
    };
    let report = runtime()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(60), throughput::run(&args)).await
        })
        .expect("run finishes")
        .expect("run succeeds");
    assert_eq!(report.sent, 5_000);
    assert_eq!(report.received, 15_000);
}

#[test]
fn memory_scenarios_read_the_brokers_rss() {
    let warren = Warren::start();
    let uri = warren.uri();
    let pid = warren.pid().to_string();
    let rt = runtime();
    let PerfCommand::ConnectionCount(c) = parse(&[
        "connection-count",
        "--uri",
        &uri,
        "--pid",
        &pid,
        "--connections",
        "20",
        "--settle",
        "0",
    ]) else {
        unreachable!()
    };
    let r = rt.block_on(memory::run_connection_count(&c)).unwrap();
    assert_eq!(r.count, 20);
    assert!(r.rss_before > 0 && r.rss_after > 0);

    let PerfCommand::QueueCount(q) = parse(&[
        "queue-count",
        "--uri",
        &uri,
        "--pid",
        &pid,
        "--queues",
        "200",
        "--settle",
        "0",
    ]) else {
        unreachable!()
    };
    let r = rt.block_on(memory::run_queue_count(&q)).unwrap();
    assert_eq!(r.count, 200);

    let PerfCommand::Backlog(b) = parse(&[
        "backlog",
        "--uri",
        &uri,
        "--pid",
        &pid,
        "--messages",
        "20000",
        "--settle",
        "0",
    ]) else {
        unreachable!()
    };
    let r = rt.block_on(memory::run_backlog(&b)).unwrap();
    assert_eq!(r.count, 20_000);
    // 20k messages cannot fit in no memory at all.
    assert!(r.rss_after > r.rss_before, "{r:?}");
}
