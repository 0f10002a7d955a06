//! A bounded slow-client attack on the real `hookd` binary, run with a file limit of 256: hundreds of
//! connections that send nothing, connections that drip their headers, and requests that drip their
//! bodies. While it runs, `/healthz` and a publish succeed (each within the configured timeouts,
//! retrying a refused connection); every attacking connection is closed within its timeout; the
//! log does not fill with accept errors.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_hookd");
const KEY: &str = "hk_slow_client_test_3f9a1c7e5b2d8f4a6c0e9b1d7f3a";

/// The test-lowered limits, in ms.
const HEADER_TIMEOUT_MS: u64 = 2_000;
const IDLE_TIMEOUT_MS: u64 = 1_000;
const BODY_TIMEOUT_MS: u64 = 2_000;
/// The process's open-file limit (soft and hard); hookd caps its connections at half of it.
const FILE_LIMIT: u64 = 256;
/// Room for a loaded machine on top of each timeout: the assertions are upper bounds only.
const SLACK: Duration = Duration::from_secs(6);

const IDLE_CONNECTIONS: usize = 300;
const HEADER_DRIPPERS: usize = 20;
const BODY_DRIPPERS: usize = 20;

/// How one attacking connection ended: after how long, and what the server wrote first.
struct Ended {
    after: Duration,
    reply: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_clients_are_cut_off_while_the_api_keeps_answering() {
    hookd::server::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let (mut child, address, mut log) = start_hookd(data.path()).await;
    let started = Instant::now();

    // Drippers first, so that they hold connection slots; then the idle flood, most of which the
    // cap refuses at once.
    let header_drips: Vec<_> = (0..HEADER_DRIPPERS)
        .map(|_| tokio::spawn(drip_headers(address)))
        .collect();
    let body_drips: Vec<_> = (0..BODY_DRIPPERS)
        .map(|_| tokio::spawn(drip_body(address)))
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await; // let the drippers connect first
    let idles: Vec<_> = (0..IDLE_CONNECTIONS)
        .map(|_| tokio::spawn(idle(address)))
        .collect();

    // While the attack runs, the API answers: a refused (503) or failed try is retried, and the
    // call succeeds within the longest configured timeout (plus slack).
    let probe_deadline = Duration::from_millis(HEADER_TIMEOUT_MS.max(BODY_TIMEOUT_MS)) + SLACK;
    let health = probe(address, probe_deadline, |client, base| {
        client.get(format!("{base}/healthz")).send()
    })
    .await;
    assert_eq!(health, 200, "/healthz during the attack");
    let published = probe(address, probe_deadline, |client, base| {
        client
            .post(format!("{base}/api/events"))
            .bearer_auth(KEY)
            .json(&serde_json::json!({"event": "order.created", "data": {"orderId": "ORD-1"}}))
            .send()
    })
    .await;
    assert_eq!(published, 202, "a publish during the attack");

    let idle_limit = Duration::from_millis(IDLE_TIMEOUT_MS.min(HEADER_TIMEOUT_MS)) + SLACK;
    let mut refused = 0;
    let mut longest = [Duration::ZERO; 3];
    for task in idles {
        let ended = task.await.unwrap();
        longest[0] = longest[0].max(ended.after);
        assert!(
            ended.after <= idle_limit,
            "an idle connection stayed open {:?}",
            ended.after
        );
        refused += usize::from(ended.reply.starts_with("HTTP/1.1 503"));
    }
    // Connections over the cap are refused with a 503. How many depends on how many of the cap's
    // connections the idle timeout has closed by the time the last ones arrive (a loaded machine
    // opens them slowly), so only that some were refused is certain.
    assert!(
        refused > 0,
        "connections over the cap are refused with 503 (refused {refused})"
    );
    for task in header_drips {
        let ended = task.await.unwrap();
        longest[1] = longest[1].max(ended.after);
        assert!(
            ended.after <= Duration::from_millis(HEADER_TIMEOUT_MS) + SLACK,
            "headers dripped for {:?}",
            ended.after
        );
    }
    for task in body_drips {
        let ended = task.await.unwrap();
        longest[2] = longest[2].max(ended.after);
        assert!(
            ended.after <= Duration::from_millis(BODY_TIMEOUT_MS) + SLACK,
            "a body dripped for {:?}",
            ended.after
        );
        assert!(
            ended.reply.starts_with("HTTP/1.1 408") || ended.reply.starts_with("HTTP/1.1 503"),
            "a dripped body is answered 408 (or refused at the cap): {:?}",
            ended.reply.lines().next()
        );
        if ended.reply.starts_with("HTTP/1.1 408") {
            assert!(
                ended.reply.contains("\"code\":\"request_timeout\""),
                "{}",
                ended.reply
            );
        }
    }

    eprintln!(
        "refused at the cap: {refused}; longest open: idle {:?}, dripped headers {:?}, \
         dripped body {:?}",
        longest[0], longest[1], longest[2]
    );

    // After the attack the server is whole: a plain request works at once.
    let status = reqwest::get(format!("http://{address}/healthz"))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let _ = child.start_kill();
    let _ = child.wait().await;
    let mut text = String::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(5), log.next_line()).await
    {
        text.push_str(&line);
        text.push('\n');
    }
    let accept_errors = text.matches("cannot accept connections").count();
    let elapsed_minutes = started.elapsed().as_secs() / 60 + 1;
    assert!(
        accept_errors as u64 <= elapsed_minutes,
        "accept errors are logged at most once a minute:\n{text}"
    );
}

/// Starts `hookd serve --dev` on a free loopback port with the lowered limits and a file limit of
/// [`FILE_LIMIT`]; returns the child, its address and its log.
async fn start_hookd(
    data_dir: &std::path::Path,
) -> (
    tokio::process::Child,
    SocketAddr,
    tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
) {
    let mut command = std::process::Command::new(BIN);
    command
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("HOOKD_API_KEY", KEY)
        .env(
            "HOOKD_HTTP_HEADER_TIMEOUT_MS",
            HEADER_TIMEOUT_MS.to_string(),
        )
        .env("HOOKD_HTTP_IDLE_TIMEOUT_MS", IDLE_TIMEOUT_MS.to_string())
        .env("HOOKD_HTTP_BODY_TIMEOUT_MS", BODY_TIMEOUT_MS.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe `setrlimit` runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: FILE_LIMIT as libc::rlim_t,
                rlim_max: FILE_LIMIT as libc::rlim_t,
            };
            match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let mut command = Command::from(command);
    command.kill_on_drop(true);
    let mut child = command.spawn().unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let line = log
                .next_line()
                .await
                .unwrap()
                .expect("hookd exited before listening");
            if let Some(rest) = line.split("address=").nth(1) {
                return rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        }
    })
    .await
    .expect("hookd did not start listening");
    (child, address, log)
}

/// Calls the API until it answers other than 503 (or the connection fails), within `limit`;
/// returns the status.
async fn probe<F, R>(address: SocketAddr, limit: Duration, call: F) -> u16
where
    F: Fn(&reqwest::Client, &str) -> R,
    R: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    // A fresh connection per try: a kept-alive one would skip the accept path under test.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(limit)
        .build()
        .unwrap();
    let base = format!("http://{address}");
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        match call(&client, &base).await {
            Ok(response) if response.status() != 503 => return response.status().as_u16(),
            Ok(response) => last = format!("HTTP {}", response.status()),
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no answer within {limit:?}; last try: {last}");
}

/// Connects and sends nothing; ends when the server closes the connection.
async fn idle(address: SocketAddr) -> Ended {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect(address).await else {
        return Ended {
            after: started.elapsed(),
            reply: "connect failed".into(),
        };
    };
    let reply = read_until_closed(&mut stream, Duration::from_secs(60)).await;
    Ended {
        after: started.elapsed(),
        reply,
    }
}

/// Sends a request line, then one header line every 200 ms, until the server closes.
async fn drip_headers(address: SocketAddr) -> Ended {
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).await.unwrap();
    let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\n").await;
    let mut buffer = [0u8; 1024];
    let mut reply = Vec::new();
    for n in 0.. {
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(got) => reply.extend_from_slice(&buffer[..got]),
            },
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if started.elapsed() > Duration::from_secs(60) {
                    break;
                }
                let _ = stream.write_all(format!("x-drip-{n}: 1\r\n").as_bytes()).await;
            }
        }
    }
    Ended {
        after: started.elapsed(),
        reply: String::from_utf8_lossy(&reply).into_owned(),
    }
}

/// Sends a publish's headers at once, then its body one byte every 200 ms, until the server answers
/// and closes.
async fn drip_body(address: SocketAddr) -> Ended {
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /api/events HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ncontent-length: 10000\r\n\r\n"
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let mut buffer = [0u8; 4096];
    let mut reply = Vec::new();
    loop {
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(got) => reply.extend_from_slice(&buffer[..got]),
            },
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if started.elapsed() > Duration::from_secs(60) {
                    break;
                }
                let _ = stream.write_all(b" ").await;
            }
        }
    }
    Ended {
        after: started.elapsed(),
        reply: String::from_utf8_lossy(&reply).into_owned(),
    }
}

async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> String {
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).into_owned()
}
