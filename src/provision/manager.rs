//! The admin API's (manager-api's) bind calls, PROTOCOL.md §1.5: the
//! bearer [`Token`] (never printed), the two requests, and what an answer
//! means for provisioning. The classification is pure and tested here; the
//! HTTP sending is [`Manager::manual_add`] and [`Manager::bind`].

use serde_json::{Value, json};
use std::time::Duration;

/// A user token of the admin API. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into())
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

/// What one bind call did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `code` 0.
    Bound,
    /// Refused because the device is bound already: success when
    /// provisioning again.
    AlreadyBound,
    /// The token was refused (HTTP 401 or `code` 401), with the reason.
    Unauthorized(String),
    /// Anything else, with the HTTP status or `code` and `msg`.
    Failed(String),
}

/// Whether a refusal's `msg` says the device or MAC is bound already (the
/// mock's "device already bound"; the admin API's "该Mac地址已存在" and
/// "已绑定" messages).
fn says_already_bound(msg: &str) -> bool {
    let lower = msg.to_lowercase();
    lower.contains("already") || msg.contains("已存在") || msg.contains("已绑定")
}

/// The first 120 characters of a body, on one line.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(120).collect()
}

/// What an admin-API answer (`{"code":0,"msg":"success","data":…}`) means.
pub fn classify(status: u16, body: &[u8]) -> Answer {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let code = v.as_ref().and_then(|v| v["code"].as_i64());
    let msg = v.as_ref().and_then(|v| v["msg"].as_str()).unwrap_or("").to_string();
    if status == 401 || code == Some(401) {
        let why = if msg.is_empty() { excerpt(body) } else { msg };
        return Answer::Unauthorized(why);
    }
    match code {
        _ if status != 200 => Answer::Failed(format!("HTTP {status}: {}", excerpt(body))),
        None => Answer::Failed(format!("HTTP 200 without a result code: {}", excerpt(body))),
        Some(0) => Answer::Bound,
        Some(_) if says_already_bound(&msg) => Answer::AlreadyBound,
        Some(c) => Answer::Failed(format!("code {c}: {msg}")),
    }
}

/// A client of the admin API at `base` (its context path included, e.g.
/// `http://host:8002/xiaozhi`).
#[derive(Debug)]
pub struct Manager {
    http: reqwest::Client,
    base: String,
    token: Token,
    limit: Duration,
}

impl Manager {
    pub fn new(base: &str, token: Token, limit: Duration) -> Result<Manager, reqwest::Error> {
        Ok(Manager {
            // https:// with the system's roots.
            http: crate::device::ota::http_client(None)?,
            base: base.trim_end_matches('/').to_string(),
            token,
            limit,
        })
    }

    /// `POST /device/manual-add`: binds a MAC to `agent`.
    pub async fn manual_add(&self, agent: &str, board: &str, app_version: &str, mac: &str) -> Answer {
        let body = json!({"agentId": agent, "board": board, "appVersion": app_version, "macAddress": mac});
        self.post(&format!("{}/device/manual-add", self.base), Some(body)).await
    }

    /// `POST /device/bind/{agent}/{code}`: binds the device that was given `code`.
    pub async fn bind(&self, agent: &str, code: &str) -> Answer {
        self.post(&format!("{}/device/bind/{agent}/{code}", self.base), None)
            .await
    }

    async fn post(&self, url: &str, body: Option<Value>) -> Answer {
        let mut req = self.http.post(url).header("Authorization", self.token.bearer());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let exchange = async {
            let response = req.send().await?;
            let status = response.status().as_u16();
            Ok::<_, reqwest::Error>((status, response.bytes().await?))
        };
        match tokio::time::timeout(self.limit, exchange).await {
            Err(_) => Answer::Failed(format!(
                "no answer from {url} within {}",
                humantime::format_duration(self.limit)
            )),
            // Without the URL: reqwest's errors name it, never a header.
            Ok(Err(e)) => Answer::Failed(format!("request to {url} failed: {}", e.without_url())),
            Ok(Ok((status, body))) => classify(status, &body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_code_and_message() {
        let ok = br#"{"code":0,"msg":"success","data":null}"#;
        assert_eq!(classify(200, ok), Answer::Bound);
        let dup = r#"{"code":500,"msg":"该Mac地址已存在"}"#;
        assert_eq!(classify(200, dup.as_bytes()), Answer::AlreadyBound);
        let dup = br#"{"code":500,"msg":"device already bound"}"#;
        assert_eq!(classify(200, dup), Answer::AlreadyBound);
        let bad = br#"{"code":500,"msg":"unknown activation code 123456"}"#;
        assert_eq!(
            classify(200, bad),
            Answer::Failed("code 500: unknown activation code 123456".into())
        );
        let auth = br#"{"code":401,"msg":"invalid token"}"#;
        assert_eq!(classify(200, auth), Answer::Unauthorized("invalid token".into()));
        assert_eq!(classify(401, b""), Answer::Unauthorized(String::new()));
        assert_eq!(
            classify(502, b"<html>\n<body>Bad Gateway</body></html>"),
            Answer::Failed("HTTP 502: <html> <body>Bad Gateway</body></html>".into())
        );
    }

    #[test]
    fn the_token_is_never_shown() {
        let t = Token::new("s3cret-token");
        assert_eq!(format!("{t:?} {t}"), "Token(<hidden>) <hidden>");
        let m = Manager::new("http://127.0.0.1:1/xiaozhi/", t, Duration::from_secs(1)).unwrap();
        assert!(!format!("{m:?}").contains("s3cret"), "{m:?}");
        assert_eq!(m.base, "http://127.0.0.1:1/xiaozhi");
    }
}
