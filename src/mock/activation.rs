//! The mock's activation and binding (`[mock] activation = true`), shaped
//! like the admin API's (PROTOCOL.md §1.4, §1.5): a device not bound yet
//! gets an `activation` object in its OTA answer (a 6-digit code drawn from
//! the mock's seed and the device id, the device id as challenge) and `202`
//! from `POST /xiaozhi/ota/activate` until it is bound, then `200 success`.
//! Binding is the admin API's: `POST /xiaozhi/device/manual-add` (by MAC)
//! and `POST /xiaozhi/device/bind/{agentId}/{deviceCode}` (by code), both
//! with `Authorization: Bearer <manager_token>`, answering
//! `{"code":0,"msg":"success","data":null}` or a non-zero code and `msg`.
//! Only the OTA side gates: the WebSocket side serves every device.

use super::ota_fault::device_draw;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Where devices poll for activation (under the OTA path).
pub const ACTIVATE_PATH: &str = "/xiaozhi/ota/activate";
/// The admin API's bind-by-MAC call.
pub const MANUAL_ADD_PATH: &str = "/xiaozhi/device/manual-add";
/// The admin API's bind-by-code call (`/{agentId}/{deviceCode}` follow).
pub const BIND_PATH: &str = "/xiaozhi/device/bind";

/// The `code` of an answer to a request without the right token.
pub const UNAUTHORIZED: i64 = 401;
/// The `code` of a refused bind (already bound, unknown code, bad body),
/// as the admin API's generic error.
pub const REFUSED: i64 = 500;
/// The `msg` of a bind refused because the device is bound already.
pub const ALREADY_BOUND: &str = "device already bound";

/// What the mock knows about activation: codes handed out, devices bound.
pub(crate) struct Registry {
    seed: u64,
    manager_token: Option<String>,
    books: Mutex<Books>,
}

#[derive(Default)]
struct Books {
    /// Code → device id, for every code handed out.
    devices: HashMap<String, String>,
    /// Device id → its code.
    codes: HashMap<String, String>,
    /// Bound device ids (lower-case MACs) → agent.
    bound: HashMap<String, String>,
}

impl Books {
    /// The device's code: drawn from the seed and id, the next free number
    /// if another device holds it.
    fn code_for(&mut self, seed: u64, device_id: &str) -> String {
        if let Some(c) = self.codes.get(device_id) {
            return c.clone();
        }
        let mut n = device_draw(seed, 0xac71_7a7e, device_id) % 1_000_000;
        let mut code = format!("{n:06}");
        for _ in 0..1_000_000 {
            if !self.devices.contains_key(&code) {
                break;
            }
            n = (n + 1) % 1_000_000;
            code = format!("{n:06}");
        }
        self.devices.insert(code.clone(), device_id.to_string());
        self.codes.insert(device_id.to_string(), code.clone());
        code
    }
}

/// An admin-API answer: `code` 0 is success.
fn result(code: i64, msg: &str) -> Response {
    axum::Json(json!({"code": code, "msg": msg, "data": null})).into_response()
}

impl Registry {
    pub(crate) fn new(seed: u64, manager_token: Option<String>) -> Registry {
        Registry {
            seed,
            manager_token,
            books: Mutex::new(Books::default()),
        }
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The `activation` object for `device_id`, or `None` once it is bound.
    pub(crate) fn pending(&self, device_id: &str) -> Option<Value> {
        let id = device_id.to_ascii_lowercase();
        let mut books = self.books();
        if books.bound.contains_key(&id) {
            return None;
        }
        let code = books.code_for(self.seed, &id);
        Some(json!({
            "code": code,
            "message": format!("xiaozhi-fleet mock\n{code}"),
            "challenge": device_id,
        }))
    }

    /// Whether the request carries `Authorization: Bearer <manager_token>`.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let given = headers.get("authorization").and_then(|v| v.to_str().ok());
        let want = self.manager_token.as_deref().filter(|t| !t.is_empty());
        matches!((given, want), (Some(g), Some(w)) if g.strip_prefix("Bearer ") == Some(w))
    }

    /// Binds `device_id` to `agent`, or says why not.
    fn bind(&self, device_id: &str, agent: &str) -> Response {
        let mut books = self.books();
        if books.bound.contains_key(device_id) {
            return result(REFUSED, ALREADY_BOUND);
        }
        books.bound.insert(device_id.to_string(), agent.to_string());
        result(0, "success")
    }
}

async fn activate(State(reg): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    let id = headers.get("device-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    if reg.books().bound.contains_key(&id.to_ascii_lowercase()) {
        (StatusCode::OK, "success").into_response()
    } else {
        StatusCode::ACCEPTED.into_response()
    }
}

async fn manual_add(State(reg): State<Arc<Registry>>, headers: HeaderMap, body: String) -> Response {
    if !reg.authorized(&headers) {
        return result(UNAUTHORIZED, "invalid token");
    }
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let (Some(agent), Some(mac)) = (v["agentId"].as_str(), v["macAddress"].as_str()) else {
        return result(REFUSED, "agentId and macAddress are required");
    };
    reg.bind(&mac.to_ascii_lowercase(), agent)
}

async fn bind(
    State(reg): State<Arc<Registry>>,
    Path((agent, code)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !reg.authorized(&headers) {
        return result(UNAUTHORIZED, "invalid token");
    }
    let device = reg.books().devices.get(&code).cloned();
    match device {
        Some(id) => reg.bind(&id, &agent),
        None => result(REFUSED, &format!("unknown activation code {code}")),
    }
}

/// The activate poll and the bind calls, over `registry`.
pub(crate) fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route(ACTIVATE_PATH, post(activate))
        .route(MANUAL_ADD_PATH, post(manual_add))
        .route(&format!("{BIND_PATH}/{{agent}}/{{code}}"), post(bind))
        .with_state(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_stable_and_distinct() {
        let reg = Registry::new(3, None);
        let a = reg.pending("02:aa:00:00:00:01").unwrap();
        let b = reg.pending("02:aa:00:00:00:02").unwrap();
        assert_eq!(a, reg.pending("02:aa:00:00:00:01").unwrap());
        let code = a["code"].as_str().unwrap();
        assert!(code.len() == 6 && code.bytes().all(|c| c.is_ascii_digit()), "{code}");
        assert_ne!(a["code"], b["code"]);
        assert_eq!(a["challenge"], "02:aa:00:00:00:01");
        assert_eq!(a, Registry::new(3, None).pending("02:aa:00:00:00:01").unwrap());
    }

    #[test]
    fn a_bound_device_has_no_activation_and_binding_twice_is_refused() {
        let reg = Registry::new(3, Some("t".into()));
        assert!(reg.pending("02:aa:00:00:00:01").is_some());
        assert_eq!(reg.bind("02:aa:00:00:00:01", "agent").status(), StatusCode::OK);
        assert!(reg.pending("02:AA:00:00:00:01").is_none());
        assert!(reg.books().bound.contains_key("02:aa:00:00:00:01"));
        let mut h = HeaderMap::new();
        assert!(!reg.authorized(&h));
        h.insert("authorization", "Bearer t".parse().unwrap());
        assert!(reg.authorized(&h));
        h.insert("authorization", "Bearer x".parse().unwrap());
        assert!(!reg.authorized(&h));
    }
}
