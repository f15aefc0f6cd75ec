//! A real HTTP receiver for webhook tests: a server on 127.0.0.1 (a free
//! port) that records every request (path, headers, body) and answers as
//! the test says: 200, another status, a redirect, or not at all until the
//! test lets it (a hanging endpoint). HTTP/1.1 with `Content-Length`
//! bodies and `Connection: close`, which is all a webhook client needs;
//! plain std threads, so it works from sync and async tests alike.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};

/// How the receiver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Ok,
    Status(u16),
    /// `302 Found` to another path of this server.
    Redirect,
    /// Reads the request, records it, and answers only once the receiver
    /// is dropped (or after ten minutes).
    Hang,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    /// Whether `X-Berkut-Signature` is `sha256=` and the HMAC-SHA256 of the
    /// body under `secret`, checked in constant time.
    pub fn signed_with(&self, secret: &[u8]) -> bool {
        let Some(hex_sig) = self
            .header("X-Berkut-Signature")
            .and_then(|s| s.strip_prefix("sha256="))
        else {
            return false;
        };
        let Ok(sig) = hex::decode(hex_sig) else {
            return false;
        };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(&self.body);
        mac.verify_slice(&sig).is_ok()
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Request>>,
    released: Mutex<bool>,
    release: Condvar,
}

pub struct Receiver {
    port: u16,
    answer: Answer,
    shared: Arc<Shared>,
}

impl Receiver {
    pub fn start(answer: Answer) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a receiver");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if *s.released.lock().unwrap() {
                    return;
                }
                let s = Arc::clone(&s);
                std::thread::spawn(move || serve(stream, answer, &s));
            }
        });
        Receiver {
            port,
            answer,
            shared,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The requests whose JSON body has `"type": kind`.
    pub fn events(&self, kind: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.json()["type"] == kind)
            .collect()
    }

    pub fn answer(&self) -> Answer {
        self.answer
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        *self.shared.released.lock().unwrap() = true;
        self.shared.release.notify_all();
        // Wakes the accept loop so that it ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A URL on 127.0.0.1 where nothing listens (a port bound and let go).
pub fn closed_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/hook")
}

fn serve(stream: TcpStream, answer: Answer, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(1 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    shared.requests.lock().unwrap().push(Request {
        method,
        path,
        headers,
        body,
    });
    let (status, extra) = match answer {
        Answer::Ok => (200, String::new()),
        Answer::Status(code) => (code, String::new()),
        Answer::Redirect => (302, "Location: /elsewhere\r\n".to_owned()),
        Answer::Hang => {
            let released = shared.released.lock().unwrap();
            let _ = shared
                .release
                .wait_timeout_while(released, Duration::from_secs(600), |r| !*r);
            (200, String::new())
        }
    };
    let _ = (&stream).write_all(
        format!("HTTP/1.1 {status} X\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
}
