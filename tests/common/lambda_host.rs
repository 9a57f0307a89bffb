//! A Lambda stand-in for the tests: the Lambda Runtime API that the real binary polls (as in a
//! Lambda sandbox), and Lambda's Invoke API in front of it (what Step Functions calls). One
//! sandbox process by default, as a function with reserved concurrency 1, or several, each
//! polling its own Runtime API port: each restarted after it dies, and killed when the
//! invocation it runs passes its deadline, as Lambda does.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Notify};

/// What an invocation ended with, as Lambda's Invoke API reports it.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The handler's response.
    Ok(Value),
    /// `X-Amz-Function-Error: Unhandled` with `{errorType, errorMessage}`.
    FunctionError { error_type: String, message: String },
}

impl Outcome {
    pub fn ok(&self) -> &Value {
        match self {
            Outcome::Ok(value) => value,
            other => panic!("the slice failed: {other:?}"),
        }
    }
    pub fn error_type(&self) -> &str {
        match self {
            Outcome::FunctionError { error_type, .. } => error_type,
            Outcome::Ok(value) => panic!("the slice succeeded: {value}"),
        }
    }
}

/// A fault the Invoke API answers the next invocation with, instead of running it.
#[derive(Debug, Clone, Copy)]
pub enum InvokeFault {
    /// HTTP 500 ServiceException from Lambda itself (Step Functions: `Lambda.ServiceException`).
    ServiceException,
    /// The sandbox is SIGKILLed this long into the invocation (`Runtime.ExitError`).
    KillAfter(Duration),
    /// The sandbox is told a deadline a minute away, so it overruns the function's timeout and
    /// is killed there (`Sandbox.Timedout`), as a slice whose last upload hangs would be.
    Overrun,
    /// Answered `{}` without running: the task's ResultSelector cannot read it, a
    /// `States.Runtime` error that no Retry or Catch takes, so the execution fails abnormally.
    Unreadable,
    /// Answered normally (to place the faults after it).
    Pass,
}

struct Invocation {
    id: String,
    body: Bytes,
    deadline_ms: u128,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Invocation>>,
    queued: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    faults: Mutex<VecDeque<InvokeFault>>,
    invocations: Mutex<Vec<Outcome>>,
    next_id: Mutex<u64>,
    /// Each running sandbox's pid, by sandbox.
    pids: Mutex<HashMap<usize, u32>>,
    /// The sandbox that took each invocation in flight.
    taken_by: Mutex<HashMap<String, usize>>,
    /// The most invocations that sandboxes ran at once.
    peak_running: std::sync::atomic::AtomicUsize,
    stopped: std::sync::atomic::AtomicBool,
    /// The sandbox's log lines on stdout.
    logs: Mutex<Vec<String>>,
    /// Where requests for anything but Lambda go (moto, when moto's ASL interpreter sends
    /// every AWS call of its states to this port).
    upstream: Mutex<Option<String>>,
}

impl Shared {
    /// SIGKILLs the sandbox running invocation `id`, if one took it, as Lambda does at a
    /// timeout (its supervisor starts another).
    fn kill_sandbox_of(&self, id: &str) {
        let sandbox = self.taken_by.lock().unwrap().get(id).copied();
        if let Some(pid) = sandbox.and_then(|s| self.pids.lock().unwrap().get(&s).copied()) {
            kill(pid);
        }
    }
}

/// SIGKILLs a sandbox process.
fn kill(pid: u32) {
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}

/// The Runtime API and Invoke API on one loopback port, and the sandbox process.
pub struct LambdaHost {
    pub url: String,
    timeout: Duration,
    shared: Arc<Shared>,
}

impl LambdaHost {
    /// Serves the APIs for a function with this timeout; [`LambdaHost::run_sandbox`] starts it.
    pub async fn listen(timeout: Duration) -> LambdaHost {
        let shared = Arc::new(Shared::default());
        let app = runtime_api()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .fallback(forward)
            .with_state((shared.clone(), timeout, 0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        LambdaHost {
            url: format!("http://{addr}"),
            timeout,
            shared,
        }
    }

    /// Starts the sandbox: `sandbox` is the binary's command with its AWS environment; the
    /// Runtime API variables are added here.
    pub fn run_sandbox(&self, sandbox: std::process::Command) {
        let api = self.url.trim_start_matches("http://").to_string();
        self.start(sandbox, api, 0);
    }

    /// Starts `count` sandboxes (a function with that much concurrency), each made by `sandbox`
    /// and polling a Runtime API port of its own, so the host knows which one runs what.
    pub async fn run_sandboxes(&self, count: usize, sandbox: impl Fn() -> std::process::Command) {
        self.run_sandbox(sandbox());
        for index in 1..count {
            let app = runtime_api().with_state((self.shared.clone(), self.timeout, index));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let api = listener.local_addr().unwrap().to_string();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            self.start(sandbox(), api, index);
        }
    }

    /// Keeps one sandbox running on Runtime API `api`: starts it, and when it dies fails its
    /// invocations in flight with `Runtime.ExitError` and starts another.
    fn start(&self, mut sandbox: std::process::Command, api: String, index: usize) {
        sandbox
            .env("AWS_LAMBDA_RUNTIME_API", api)
            .env("AWS_LAMBDA_FUNCTION_NAME", "sechub-export")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        let shared = self.shared.clone();
        let mut command = tokio::process::Command::from(sandbox);
        command.kill_on_drop(true);
        tokio::spawn(async move {
            use std::sync::atomic::Ordering;
            while !shared.stopped.load(Ordering::SeqCst) {
                let mut child = command.spawn().expect("start the sandbox");
                if let Some(pid) = child.id() {
                    shared.pids.lock().unwrap().insert(index, pid);
                }
                tokio::spawn(forward_logs(child.stdout.take().unwrap(), shared.clone()));
                let _ = child.wait().await;
                // What the dead sandbox had taken fails as Lambda reports a killed runtime.
                {
                    let mut taken = shared.taken_by.lock().unwrap();
                    let mut waiting = shared.waiting.lock().unwrap();
                    taken.retain(|id, by| {
                        if *by == index {
                            if let Some(reply) = waiting.remove(id) {
                                let _ = reply.send(Outcome::FunctionError {
                                    error_type: "Runtime.ExitError".into(),
                                    message: "Runtime exited with error: signal: killed".into(),
                                });
                            }
                        }
                        *by != index
                    });
                }
            }
        });
    }

    /// Sends every request that is not for Lambda to `url` (moto's ASL interpreter calls S3,
    /// for a Distributed Map's items, on the same port as Lambda).
    pub fn forward_others_to(&self, url: &str) {
        *self.shared.upstream.lock().unwrap() = Some(url.to_string());
    }

    /// Answers the next invocations with these faults, in order.
    pub fn inject(&self, faults: &[InvokeFault]) {
        self.shared.faults.lock().unwrap().extend(faults);
    }

    /// Every invocation's outcome so far, in order.
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.shared.invocations.lock().unwrap().clone()
    }

    /// The most invocations that sandboxes ran at the same time so far.
    pub fn peak_running(&self) -> usize {
        self.shared
            .peak_running
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Asserts the sandbox logged, and only JSON lines (what CloudWatch Logs parses); returns them.
    pub fn json_logs(&self) -> Vec<Value> {
        let logs = self.shared.logs.lock().unwrap().clone();
        assert!(!logs.is_empty(), "the sandbox logged nothing");
        logs.iter()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|_| panic!("a log line in Lambda is not JSON: {line}"))
            })
            .collect()
    }

    /// Invokes the function as Lambda's Invoke API does (what a client or Step Functions sees).
    pub async fn invoke(&self, event: &Value) -> Outcome {
        let response = post_json(
            &format!(
                "{}/2015-03-31/functions/sechub-export/invocations",
                self.url
            ),
            event.to_string(),
        )
        .await;
        let (status, function_error, body) = response;
        assert_eq!(status, 200, "invoke failed: {body}");
        let value: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        match function_error {
            None => Outcome::Ok(value),
            Some(_) => Outcome::FunctionError {
                error_type: value["errorType"].as_str().unwrap_or("").to_string(),
                message: value["errorMessage"].as_str().unwrap_or("").to_string(),
            },
        }
    }
}

impl Drop for LambdaHost {
    fn drop(&mut self) {
        self.shared
            .stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared
            .pids
            .lock()
            .unwrap()
            .values()
            .for_each(|pid| kill(*pid));
    }
}

/// Keeps the sandbox's stdout (its log lines) and copies it onto the test's output.
async fn forward_logs(stdout: tokio::process::ChildStdout, shared: Arc<Shared>) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("sandbox: {line}");
        shared.logs.lock().unwrap().push(line);
    }
}

type HostState = State<(Arc<Shared>, Duration, usize)>;

/// The Runtime API's routes (what a sandbox polls).
fn runtime_api() -> Router<(Arc<Shared>, Duration, usize)> {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
}

async fn next(State((shared, _, sandbox)): HostState) -> Response {
    loop {
        let notified = shared.queued.notified();
        let taken = shared.queue.lock().unwrap().pop_front();
        if let Some(invocation) = taken {
            let running = {
                let mut taken_by = shared.taken_by.lock().unwrap();
                taken_by.insert(invocation.id.clone(), sandbox);
                taken_by.len()
            };
            shared
                .peak_running
                .fetch_max(running, std::sync::atomic::Ordering::SeqCst);
            let mut headers = HeaderMap::new();
            headers.insert(
                "lambda-runtime-aws-request-id",
                invocation.id.parse().unwrap(),
            );
            headers.insert(
                "lambda-runtime-deadline-ms",
                invocation.deadline_ms.to_string().parse().unwrap(),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:sechub-export"
                    .parse()
                    .unwrap(),
            );
            return (StatusCode::OK, headers, invocation.body).into_response();
        }
        notified.await;
    }
}

fn settle(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    shared.taken_by.lock().unwrap().remove(id);
    match shared.waiting.lock().unwrap().remove(id) {
        Some(reply) => {
            let _ = reply.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(
    State((shared, _, _)): HostState,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body).expect("the handler answers JSON");
    settle(&shared, &id, Outcome::Ok(value))
}

async fn error(
    State((shared, _, _)): HostState,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let value: Value = serde_json::from_slice(&body).expect("errors are JSON");
    let outcome = Outcome::FunctionError {
        error_type: value["errorType"].as_str().unwrap_or("").to_string(),
        message: value["errorMessage"].as_str().unwrap_or("").to_string(),
    };
    settle(&shared, &id, outcome)
}

async fn init_error(body: Bytes) -> StatusCode {
    panic!(
        "the runtime failed to start: {}",
        String::from_utf8_lossy(&body)
    );
}

/// Lambda's Invoke API: queue the event for the sandbox and wait for its answer, at most the
/// function's timeout (then `Sandbox.Timedout`, and the sandbox is killed, as Lambda does).
async fn invoke(State((shared, timeout, _)): HostState, body: Bytes) -> Response {
    let fault = shared.faults.lock().unwrap().pop_front();
    if let Some(InvokeFault::ServiceException) = fault {
        let mut headers = HeaderMap::new();
        headers.insert("x-amzn-errortype", "ServiceException".parse().unwrap());
        headers.insert("x-amzn-requestid", "injected-fault".parse().unwrap());
        let body = json!({"Type": "Service", "Message": "injected: Lambda had an internal error"});
        return (StatusCode::INTERNAL_SERVER_ERROR, headers, body.to_string()).into_response();
    }
    if let Some(InvokeFault::Unreadable) = fault {
        return (StatusCode::OK, "{}").into_response();
    }
    let id = {
        let mut next = shared.next_id.lock().unwrap();
        *next += 1;
        format!("req-{next}")
    };
    let (reply, answer) = oneshot::channel();
    shared.waiting.lock().unwrap().insert(id.clone(), reply);
    let told = match fault {
        Some(InvokeFault::Overrun) => Duration::from_secs(60),
        _ => timeout,
    };
    let deadline = SystemTime::now() + told;
    shared.queue.lock().unwrap().push_back(Invocation {
        id: id.clone(),
        body,
        deadline_ms: deadline.duration_since(UNIX_EPOCH).unwrap().as_millis(),
    });
    shared.queued.notify_one();
    if let Some(InvokeFault::KillAfter(after)) = fault {
        let shared = shared.clone();
        let id = id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            shared.kill_sandbox_of(&id);
        });
    }
    let outcome = match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(outcome)) => outcome,
        _ => {
            shared.waiting.lock().unwrap().remove(&id);
            shared.kill_sandbox_of(&id);
            Outcome::FunctionError {
                error_type: "Sandbox.Timedout".into(),
                message: format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
            }
        }
    };
    shared.invocations.lock().unwrap().push(outcome.clone());
    let mut headers = HeaderMap::new();
    headers.insert("x-amzn-requestid", id.parse().unwrap());
    let body = match outcome {
        Outcome::Ok(value) => value,
        Outcome::FunctionError {
            error_type,
            message,
        } => {
            headers.insert("x-amz-function-error", "Unhandled".parse().unwrap());
            json!({"errorType": error_type, "errorMessage": message})
        }
    };
    (StatusCode::OK, headers, body.to_string()).into_response()
}

/// A POST with the standard library's TCP and a minimal HTTP/1.1 exchange; returns the status,
/// the `X-Amz-Function-Error` header and the body.
async fn post_json(url: &str, body: String) -> (u16, Option<String>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.trim_start_matches("http://");
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let function_error = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("x-amz-function-error: ")
            .map(str::to_string)
    });
    (status, function_error, body.to_string())
}

/// Any other request, passed to the upstream as it came (one HTTP/1.1 exchange).
async fn forward(
    State((shared, _, _)): HostState,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(upstream) = shared.upstream.lock().unwrap().clone() else {
        return (StatusCode::NOT_FOUND, "no upstream").into_response();
    };
    let authority = upstream.trim_start_matches("http://").to_string();
    let mut request = format!("{method} {uri} HTTP/1.1\r\n").into_bytes();
    for (name, value) in &headers {
        if name != "connection" && name != "host" {
            request.extend(format!("{name}: ").as_bytes());
            request.extend(value.as_bytes());
            request.extend(b"\r\n");
        }
    }
    request.extend(format!("Host: {authority}\r\nConnection: close\r\n\r\n").as_bytes());
    request.extend(&body);
    let mut stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut reply = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if name == "transfer-encoding" && value.trim() == "chunked" {
            body = unchunk(&body);
        } else if name != "connection" && name != "content-length" {
            reply.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.trim().parse().unwrap(),
            );
        }
    }
    (StatusCode::from_u16(status).unwrap(), reply, body).into_response()
}

/// The body of a chunked HTTP/1.1 response.
fn unchunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = String::from_utf8_lossy(&raw[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.extend(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
}
