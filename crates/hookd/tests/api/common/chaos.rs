//! A misbehaving webhook receiver: raw TCP on a loopback port, so it can fail below HTTP (resets,
//! garbage, hangs, drips, endless bodies), not only with status codes.
//!
//! It reads each request's head (and usually its body), asks the test's `choose` function how to
//! behave, acts, and logs an [`Exchange`]: which delivery attempt it saw (`webhook-id`,
//! `X-Webhook-Attempt`), what it did, how many body bytes it got out, and whether hookd hung up
//! first. Connections are kept alive after a well-formed answer (hookd pools them), and end after
//! any misbehaviour.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the receiver does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// 200 with a short body.
    Ok,
    /// 500 with a short body.
    ServerError,
    /// 503 with `Retry-After: 1` (seconds).
    Unavailable,
    /// 429, with `Retry-After: 0` when `retry_after`, else without the header.
    TooManyRequests { retry_after: bool },
    /// 410 Gone: the endpoint asks never to be called again.
    Gone,
    /// Reads the request, then never answers (until hookd hangs up).
    Hang,
    /// Reads the request head only, then resets the connection (`SO_LINGER` 0: RST, not FIN).
    Reset,
    /// Answers bytes that are not an HTTP response, then closes.
    Garbage,
    /// Drips the status line and headers one byte at a time, far past any timeout.
    SlowHeaders,
    /// Answers `200` headers at once, then drips the body one byte at a time.
    SlowBody,
    /// Answers `200` with a 1 GiB body, written as fast as hookd takes it.
    HugeBody,
}

impl Behaviour {
    /// Every behaviour, in a fixed order.
    pub const ALL: [Behaviour; 12] = [
        Behaviour::Ok,
        Behaviour::ServerError,
        Behaviour::Unavailable,
        Behaviour::TooManyRequests { retry_after: true },
        Behaviour::TooManyRequests { retry_after: false },
        Behaviour::Gone,
        Behaviour::Hang,
        Behaviour::Reset,
        Behaviour::Garbage,
        Behaviour::SlowHeaders,
        Behaviour::SlowBody,
        Behaviour::HugeBody,
    ];
}

/// What the receiver knows about a request when it chooses a behaviour.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    /// The `webhook-id` header (the event id).
    pub webhook_id: String,
    /// The `X-Webhook-Attempt` header.
    pub attempt: u32,
}

/// One request the receiver saw and what it did about it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub request: Request,
    /// The signed body's `attempt`, when the body was read (every behaviour but `Reset`).
    pub body_attempt: Option<u64>,
    pub behaviour: Behaviour,
    /// The complete body of a well-formed answer (status answers), to compare with hookd's excerpt.
    pub answer_body: Option<String>,
    /// Response body bytes written to the socket (drips and the huge body).
    pub body_bytes_written: u64,
    /// hookd closed the connection before the receiver was done (hangs, drips, the huge body).
    pub hookd_hung_up: bool,
    /// The receiver is done with this exchange.
    pub finished: bool,
}

/// How long a drip waits between bytes.
pub const DRIP_INTERVAL: Duration = Duration::from_millis(50);
/// Bytes a drip sends before it gives up on being cut off: 400 × 50 ms = 20 s, far past any
/// timeout the chaos test uses.
const DRIP_BYTES: usize = 400;
/// The `Content-Length` the huge body announces.
const HUGE_BODY_ANNOUNCED: u64 = 1 << 30;
/// The most the huge body really writes before the receiver gives up on being cut off. A client
/// that buffered whole bodies would take all of it.
pub const HUGE_BODY_LIMIT: u64 = 64 << 20;
/// How long a hang waits for hookd to hang up before giving up.
const HANG_LIMIT: Duration = Duration::from_secs(30);
/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;

type Choose = dyn Fn(&Request) -> Behaviour + Send + Sync;

#[derive(Clone)]
pub struct ChaosReceiver {
    pub base: String,
    choose: Arc<Choose>,
    log: Arc<Mutex<Vec<Exchange>>>,
}

impl ChaosReceiver {
    /// Starts listening on a loopback port; `choose` decides each request's behaviour.
    pub async fn start(choose: impl Fn(&Request) -> Behaviour + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Self {
            base: format!("http://{}", listener.local_addr().unwrap()),
            choose: Arc::new(choose),
            log: Arc::default(),
        };
        let accepting = receiver.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(accepting.clone().serve(stream));
            }
        });
        receiver
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until every exchange is finished (hookd hung up on every hang and drip, or the receiver
    /// gave up on it), at most `limit`; returns the log.
    pub async fn wait_until_finished(&self, limit: Duration) -> Vec<Exchange> {
        super::wait::until(limit, async || {
            let log = self.exchanges();
            match log.iter().filter(|e| !e.finished).count() {
                0 => Ok(log),
                open => Err(format!("{open} chaos exchanges still open")),
            }
        })
        .await
    }

    /// Serves requests on one connection until it ends.
    async fn serve(self, mut stream: TcpStream) {
        let mut buffer = Vec::new();
        loop {
            let Some(head) = read_head(&mut stream, &mut buffer).await else {
                return;
            };
            let Some((request, content_length)) = parse_head(&head) else {
                let _ = stream
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
                return;
            };
            let behaviour = (self.choose)(&request);
            let mut exchange = Exchange {
                request,
                body_attempt: None,
                behaviour,
                answer_body: None,
                body_bytes_written: 0,
                hookd_hung_up: false,
                finished: false,
            };
            if behaviour != Behaviour::Reset {
                let Some(body) = read_body(&mut stream, &mut buffer, content_length).await else {
                    return;
                };
                exchange.body_attempt = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|json| json["attempt"].as_u64());
            }
            // Logged before acting, so a test can see what is in progress.
            let index = {
                let mut log = self.log.lock().unwrap();
                log.push(exchange.clone());
                log.len() - 1
            };
            let keep_alive = act(&mut stream, &mut exchange).await;
            exchange.finished = true;
            self.log.lock().unwrap()[index] = exchange;
            if !keep_alive {
                return;
            }
        }
    }
}

/// Carries out the exchange's behaviour on the stream; true if the connection may serve another
/// request.
async fn act(stream: &mut TcpStream, exchange: &mut Exchange) -> bool {
    let request = &exchange.request;
    let status_answer = |status: u16, reason: &str, extra: &str| {
        let body = format!(
            "chaos {status} for {} attempt {}",
            request.webhook_id, request.attempt
        );
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{extra}\r\n",
            body.len()
        );
        (head + &body, body)
    };
    let (answer, body) = match exchange.behaviour {
        Behaviour::Ok => status_answer(200, "OK", ""),
        Behaviour::ServerError => status_answer(500, "Internal Server Error", ""),
        Behaviour::Unavailable => status_answer(503, "Service Unavailable", "retry-after: 1\r\n"),
        Behaviour::TooManyRequests { retry_after: true } => {
            status_answer(429, "Too Many Requests", "retry-after: 0\r\n")
        }
        Behaviour::TooManyRequests { retry_after: false } => {
            status_answer(429, "Too Many Requests", "")
        }
        Behaviour::Gone => status_answer(410, "Gone", ""),
        Behaviour::Hang => {
            exchange.hookd_hung_up = hang(stream).await;
            return false;
        }
        Behaviour::Reset => {
            let _ = stream.set_zero_linger();
            return false;
        }
        Behaviour::Garbage => {
            let _ = stream.write_all(&garbage(request)).await;
            let _ = stream.shutdown().await;
            return false;
        }
        Behaviour::SlowHeaders => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nx-chaos-padding: {}\r\ncontent-length: 0\r\n\r\n",
                "p".repeat(DRIP_BYTES)
            );
            exchange.hookd_hung_up = drip(stream, head.as_bytes()).await.1;
            return false;
        }
        Behaviour::SlowBody => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {DRIP_BYTES}\r\n\r\n");
            if stream.write_all(head.as_bytes()).await.is_err() {
                return false;
            }
            let (written, hung_up) = drip(stream, &[b'd'; DRIP_BYTES]).await;
            exchange.body_bytes_written = written as u64;
            exchange.hookd_hung_up = hung_up;
            return false;
        }
        Behaviour::HugeBody => {
            let (written, hung_up) = huge_body(stream).await;
            exchange.body_bytes_written = written;
            exchange.hookd_hung_up = hung_up;
            return false;
        }
    };
    exchange.answer_body = Some(body);
    stream.write_all(answer.as_bytes()).await.is_ok()
}

/// Waits without answering until hookd closes the connection (true) or the limit passes (false).
async fn hang(stream: &mut TcpStream) -> bool {
    let mut scratch = [0u8; 1024];
    let closed = async {
        loop {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(HANG_LIMIT, closed).await.is_ok()
}

/// Writes `bytes` one at a time, [`DRIP_INTERVAL`] apart, watching for hookd hanging up. Returns
/// the bytes written and whether hookd hung up before the end.
async fn drip(stream: &mut TcpStream, bytes: &[u8]) -> (usize, bool) {
    let mut scratch = [0u8; 1024];
    for (written, byte) in bytes.iter().enumerate() {
        if stream.write_all(std::slice::from_ref(byte)).await.is_err() {
            return (written, true);
        }
        tokio::select! {
            _ = tokio::time::sleep(DRIP_INTERVAL) => {}
            read = stream.read(&mut scratch) => {
                if matches!(read, Ok(0) | Err(_)) {
                    return (written + 1, true);
                }
            }
        }
    }
    (bytes.len(), false)
}

/// Announces a 1 GiB body and writes it as fast as hookd takes it, up to [`HUGE_BODY_LIMIT`].
/// Returns the body bytes written and whether hookd hung up before the limit.
async fn huge_body(stream: &mut TcpStream) -> (u64, bool) {
    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {HUGE_BODY_ANNOUNCED}\r\n\r\n");
    if stream.write_all(head.as_bytes()).await.is_err() {
        return (0, true);
    }
    let chunk = vec![b'x'; 64 * 1024];
    let mut written = 0u64;
    while written < HUGE_BODY_LIMIT {
        match stream.write(&chunk).await {
            Ok(0) | Err(_) => return (written, true),
            Ok(n) => written += n as u64,
        }
    }
    (written, false)
}

/// Bytes no HTTP client can parse as a response; which ones varies with the request.
fn garbage(request: &Request) -> Vec<u8> {
    let variants: [&[u8]; 4] = [
        b"220 mail.example.com ESMTP ready\r\n",
        b"HTTP/1.1 two hundred OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: lots\r\n\r\nhello",
        b"\x00\xff\x13\x37 not http at all \xfe\r\n\r\n",
    ];
    variants[(request.attempt as usize + request.webhook_id.len()) % variants.len()].to_vec()
}

/// Reads until the end of a request head; returns it and keeps any bytes after it in `buffer`.
/// `None` when the connection ends first (or the head is too large).
async fn read_head(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            return Some(std::mem::replace(buffer, rest));
        }
        if buffer.len() > MAX_HEAD {
            return None;
        }
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads a body of `length` bytes, starting with what `buffer` already holds.
async fn read_body(stream: &mut TcpStream, buffer: &mut Vec<u8>, length: usize) -> Option<Vec<u8>> {
    while buffer.len() < length {
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    let rest = buffer.split_off(length);
    Some(std::mem::replace(buffer, rest))
}

/// The request path, `webhook-id`, `X-Webhook-Attempt` and `Content-Length` of a request head.
fn parse_head(head: &[u8]) -> Option<(Request, usize)> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let (mut webhook_id, mut attempt, mut length) = (None, None, 0);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "webhook-id" => webhook_id = Some(value.to_owned()),
            "x-webhook-attempt" => attempt = value.parse().ok(),
            "content-length" => length = value.parse().ok()?,
            _ => {}
        }
    }
    let request = Request {
        path,
        webhook_id: webhook_id?,
        attempt: attempt?,
    };
    Some((request, length))
}
