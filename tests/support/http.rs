//! A small in-process HTTP/1.1 server for tests: serves byte bodies by path, honours `Range: bytes=N-`,
//! can inject faults (status codes, connections cut mid-body, replaced bodies, ignored ranges), and logs
//! every request. Bodies can carry a Content-Type, and what a path without a body gets can be set (a
//! JSON Status, as kube-apiserver answers). Binds 127.0.0.1 on a free port; stops when dropped.
//!
//! ```ignore
//! let srv = TestServer::start();
//! srv.put("/release/v1.0.0/bin/linux/amd64/kubelet", b"...".to_vec());
//! srv.fault_once("/release/v1.0.0/bin/linux/amd64/kubelet", Fault::Status(500));
//! let url = format!("{}/release/v1.0.0/bin/linux/amd64/kubelet", srv.url());
//! ```

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (and a short text body).
    Status(u16),
    /// Send headers announcing the whole (range of the) body, then only its first `n` bytes, then close.
    CutAfter(usize),
    /// Serve these bytes instead of the body (with a matching Content-Length): a corrupted or short file.
    Body(Vec<u8>),
    /// Answer a Range request with 200 and the whole body.
    IgnoreRange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub status: u16,
}

#[derive(Default)]
struct Route {
    body: Arc<Vec<u8>>,
    content_type: Option<String>,
    once: VecDeque<Fault>,
    always: Option<Fault>,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    log: Vec<Logged>,
    not_found: Option<NotFound>,
}

/// The 404 answer for paths without a body: its Content-Type and its body, made from the path.
type NotFound = (String, Arc<dyn Fn(&str) -> Vec<u8> + Send + Sync>);

pub struct TestServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let handle = thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                thread::spawn(move || serve(conn, &st));
            }
        });
        TestServer {
            addr,
            state,
            stop,
            handle: Some(handle),
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn put(&self, path: &str, body: impl Into<Vec<u8>>) {
        let mut s = self.state.lock().unwrap();
        s.routes.entry(path.to_string()).or_default().body = Arc::new(body.into());
    }

    /// `body` at `path`, served with `Content-Type: content_type`.
    pub fn put_typed(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) {
        let mut s = self.state.lock().unwrap();
        let r = s.routes.entry(path.to_string()).or_default();
        r.body = Arc::new(body.into());
        r.content_type = Some(content_type.to_string());
    }

    /// What a path without a body gets with its 404 (instead of `not found`): `body(path)`, served
    /// with `Content-Type: content_type`.
    pub fn not_found(
        &self,
        content_type: &str,
        body: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
    ) {
        self.state.lock().unwrap().not_found = Some((content_type.to_string(), Arc::new(body)));
    }

    /// A fault for the next request of `path` (queued: call several times for several requests).
    pub fn fault_once(&self, path: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .routes
            .entry(path.to_string())
            .or_default()
            .once
            .push_back(fault);
    }

    /// A fault for every request of `path` (after the queued ones).
    pub fn fault_always(&self, path: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .routes
            .entry(path.to_string())
            .or_default()
            .always = Some(fault);
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn requests_for(&self, path: &str) -> Vec<Logged> {
        self.requests()
            .into_iter()
            .filter(|l| l.path == path)
            .collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn serve(mut conn: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut range = None;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("range")
                {
                    range = Some(v.trim().to_string());
                }
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_string();

    let (body, content_type, fault, not_found) = {
        let mut s = state.lock().unwrap();
        let not_found = s.not_found.clone();
        match s.routes.get_mut(&path) {
            Some(r) => {
                let f = r.once.pop_front().or_else(|| r.always.clone());
                (Some(r.body.clone()), r.content_type.clone(), f, not_found)
            }
            None => (None, None, None, not_found),
        }
    };
    let log = |status: u16| {
        state.lock().unwrap().log.push(Logged {
            method: method.clone(),
            path: path.clone(),
            range: range.clone(),
            status,
        });
    };
    let Some(mut body) = body else {
        log(404);
        let _ = match not_found {
            Some((ct, f)) => respond(&mut conn, 404, &[format!("Content-Type: {ct}")], &f(&path)),
            None => respond(&mut conn, 404, &[], b"not found\n"),
        };
        return;
    };
    let mut cut = None;
    let mut honour_range = true;
    match fault {
        Some(Fault::Status(code)) => {
            log(code);
            let _ = respond(&mut conn, code, &[], b"injected failure\n");
            return;
        }
        Some(Fault::Body(b)) => body = Arc::new(b),
        Some(Fault::CutAfter(n)) => cut = Some(n),
        Some(Fault::IgnoreRange) => honour_range = false,
        None => {}
    }
    let len = body.len();
    let start = range
        .as_deref()
        .filter(|_| honour_range)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let (status, slice, extra) = match start {
        Some(s) if s >= len => {
            log(416);
            let _ = respond(
                &mut conn,
                416,
                &[format!("Content-Range: bytes */{len}")],
                b"",
            );
            return;
        }
        Some(s) => (
            206,
            &body[s..],
            vec![format!("Content-Range: bytes {s}-{}/{len}", len - 1)],
        ),
        None => (200, &body[..], vec![]),
    };
    let mut extra = extra;
    if let Some(ct) = content_type {
        extra.push(format!("Content-Type: {ct}"));
    }
    log(status);
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        slice.len()
    );
    for h in &extra {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    let n = cut.map(|c| c.min(slice.len())).unwrap_or(slice.len());
    let _ = conn.write_all(&slice[..n]);
    let _ = conn.flush();
    if cut.is_some() {
        // Drain what the client sent so the close is a clean FIN, not a reset that could discard data in flight.
        let _ = conn.shutdown(Shutdown::Write);
        let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
        let mut sink = [0u8; 1024];
        let _ = conn.read(&mut sink);
    }
}

fn respond(
    conn: &mut TcpStream,
    status: u16,
    headers: &[String],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    conn.flush()
}
