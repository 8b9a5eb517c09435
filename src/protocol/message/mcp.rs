//! MCP (JSON-RPC 2.0 inside `mcp` messages): the device's answers and PY's
//! discovery requests (PROTOCOL.md §2.3, §10.1 item 5).
//!
//! Right after the hello PY runs `initialize` and `tools/list` against the
//! device and later may call its tools; a simulated device that stays silent
//! leaves PY waiting. This module owns a faithful copy of the firmware's MCP
//! server rules (which requests get no reply, the error texts, the two common
//! tools) and the request builders the mock server uses to play PY's part.
//! Only the JSON-RPC *payload* is handled here; the envelope is
//! `ClientMessage::Mcp` / `ServerMessage::Mcp`.

use serde_json::{Map, Value, json};

/// MCP protocol version the firmware reports.
pub const MCP_PROTOCOL_VERSION: &str = "2024-11-05";
/// Name of the device-status tool.
pub const TOOL_GET_DEVICE_STATUS: &str = "self.get_device_status";
/// Name of the volume tool.
pub const TOOL_SET_VOLUME: &str = "self.audio_speaker.set_volume";
/// Volume reported by the simulated device status.
const DEVICE_VOLUME: i64 = 70;

type Params<'a> = Option<&'a Map<String, Value>>;

/// Answers one JSON-RPC request like the firmware's MCP server.
///
/// Returns the reply payload, or `None` when the firmware sends nothing:
/// payload not an object, `jsonrpc` not `"2.0"`, `method` not a string, a
/// `notifications…` method, `params` present but not an object, or `id` not a
/// number.
pub fn mcp_reply(payload: &Value, board_name: &str, firmware_version: &str) -> Option<Value> {
    let obj = payload.as_object()?;
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return None;
    }
    let method = obj.get("method")?.as_str()?;
    if method.starts_with("notifications") {
        return None;
    }
    let params = match obj.get("params") {
        None => None,
        Some(p) => Some(p.as_object()?),
    };
    let id = rpc_id(obj.get("id")?)?;
    let outcome = match method {
        "initialize" => Ok(json!({
            "protocolVersion": MCP_PROTOCOL_VERSION,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": board_name, "version": firmware_version},
        })),
        "tools/list" => tools_list(params),
        "tools/call" => tools_call(params),
        other => Err(format!("Method not implemented: {other}")),
    };
    Some(match outcome {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(message) => json!({"jsonrpc": "2.0", "id": id, "error": {"message": message}}),
    })
}

/// The firmware reads ids as C ints: any JSON number, fractions truncated.
fn rpc_id(id: &Value) -> Option<i64> {
    id.as_i64().or_else(|| id.as_f64().map(|f| f as i64))
}

/// The two common tools every firmware build exposes, in firmware order.
fn tools() -> [Value; 2] {
    [
        json!({
            "name": TOOL_GET_DEVICE_STATUS,
            "description": "Real-time device status: speaker volume, network, etc. \
                            Call this first before controlling the device.",
            "inputSchema": {"type": "object", "properties": {}},
        }),
        json!({
            "name": TOOL_SET_VOLUME,
            "description": "Set the speaker volume. If the current volume is unknown, \
                            call `self.get_device_status` first.",
            "inputSchema": {
                "type": "object",
                "properties": {"volume": {"type": "integer", "minimum": 0, "maximum": 100}},
                "required": ["volume"],
            },
        }),
    ]
}

/// `tools/list`: starts at the tool named by `params.cursor`. The list is far
/// below the firmware's 8000-character page, so there is never a
/// `nextCursor`. An unknown cursor yields the firmware's (odd) error.
fn tools_list(params: Params<'_>) -> Result<Value, String> {
    let cursor = params
        .and_then(|p| p.get("cursor"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let all = tools();
    let start = if cursor.is_empty() {
        0
    } else {
        all.iter()
            .position(|t| t["name"] == cursor)
            .ok_or_else(|| "Failed to add tool  because of payload size limit".to_owned())?
    };
    Ok(json!({"tools": &all[start..]}))
}

/// `tools/call`, with the firmware's checks and error texts in its order.
fn tools_call(params: Params<'_>) -> Result<Value, String> {
    let params = params.ok_or("Missing params")?;
    let name = params.get("name").and_then(Value::as_str).ok_or("Missing name")?;
    let arguments = match params.get("arguments") {
        None => None,
        Some(Value::Object(args)) => Some(args),
        Some(_) => return Err("Invalid arguments".into()),
    };
    match name {
        TOOL_GET_DEVICE_STATUS => {
            let status = json!({
                "audio_speaker": {"volume": DEVICE_VOLUME},
                "network": {"type": "wifi", "signal": "strong"},
            });
            Ok(text_result(&status.to_string()))
        }
        TOOL_SET_VOLUME => {
            volume_argument(arguments)?;
            Ok(text_result("true"))
        }
        other => Err(format!("Unknown tool: {other}")),
    }
}

/// Validates `volume` like the firmware's integer property (0–100).
fn volume_argument(arguments: Option<&Map<String, Value>>) -> Result<i64, String> {
    let volume = arguments
        .and_then(|a| a.get("volume"))
        .and_then(rpc_id)
        .ok_or("Missing valid argument: volume")?;
    if volume < 0 {
        return Err("Value is below minimum allowed: 0".into());
    }
    if volume > 100 {
        return Err("Value exceeds maximum allowed: 100".into());
    }
    Ok(volume)
}

fn text_result(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": false})
}

/// PY's `initialize` request (§2.3), without the vision capability.
pub fn mcp_initialize_request(id: u64) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": MCP_PROTOCOL_VERSION,
            "capabilities": {"roots": {"listChanged": true}, "sampling": {}},
            "clientInfo": {"name": "XiaozhiClient", "version": "1.0.0"},
        },
    })
}

/// PY's `tools/list` request: no `params` on the first page, then
/// `{"cursor": …}` while the device returns a `nextCursor`.
pub fn mcp_tools_list_request(id: u64, cursor: Option<&str>) -> Value {
    let mut request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"});
    if let (Some(cursor), Some(obj)) = (cursor, request.as_object_mut()) {
        obj.insert("params".into(), json!({ "cursor": cursor }));
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(payload: Value) -> Option<Value> {
        mcp_reply(&payload, "bread-compact-wifi", "2.0.4")
    }

    fn call(id: u64, params: Value) -> Value {
        let payload = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
        reply(payload).expect("reply")
    }

    #[test]
    fn initialize_reports_board_and_firmware() {
        let out = reply(mcp_initialize_request(1)).expect("reply");
        assert_eq!(
            out,
            json!({"jsonrpc": "2.0", "id": 1, "result": {
                "protocolVersion": "2024-11-05",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "bread-compact-wifi", "version": "2.0.4"}}})
        );
    }

    #[test]
    fn tools_list_returns_both_tools_without_next_cursor() {
        let out = reply(mcp_tools_list_request(2, None)).expect("reply");
        assert_eq!(out["id"], 2);
        let result = &out["result"];
        assert!(result.get("nextCursor").is_none());
        let names: Vec<_> = result["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .map(|t| t["name"].clone())
            .collect();
        assert_eq!(names, vec![TOOL_GET_DEVICE_STATUS, TOOL_SET_VOLUME]);
        let schema = &result["tools"][1]["inputSchema"];
        assert_eq!(schema["properties"]["volume"]["maximum"], 100);
        assert_eq!(schema["required"], json!(["volume"]));
    }

    #[test]
    fn tools_list_cursor_starts_at_named_tool() {
        let out = reply(mcp_tools_list_request(2, Some(TOOL_SET_VOLUME))).expect("reply");
        assert_eq!(out["result"]["tools"].as_array().map(Vec::len), Some(1));
        assert_eq!(out["result"]["tools"][0]["name"], TOOL_SET_VOLUME);
        let bad = reply(mcp_tools_list_request(2, Some("nope"))).expect("reply");
        assert!(bad["error"]["message"].is_string());
    }

    #[test]
    fn get_device_status_returns_json_text() {
        let out = call(7, json!({"name": TOOL_GET_DEVICE_STATUS}));
        assert_eq!(out["result"]["isError"], false);
        let text = out["result"]["content"][0]["text"].as_str().expect("text");
        let status: Value = serde_json::from_str(text).expect("status json");
        assert_eq!(status["audio_speaker"]["volume"], 70);
    }

    #[test]
    fn set_volume_answers_true_and_validates_range() {
        let out = call(3, json!({"name": TOOL_SET_VOLUME, "arguments": {"volume": 55}}));
        assert_eq!(
            out["result"],
            json!({"content": [{"type": "text", "text": "true"}], "isError": false})
        );
        let cases = [
            (json!({}), "Missing valid argument: volume"),
            (json!({"volume": "10"}), "Missing valid argument: volume"),
            (json!({"volume": -1}), "Value is below minimum allowed: 0"),
            (json!({"volume": 101}), "Value exceeds maximum allowed: 100"),
        ];
        for (arguments, message) in cases {
            let out = call(4, json!({"name": TOOL_SET_VOLUME, "arguments": arguments}));
            assert_eq!(out["error"]["message"], message);
        }
    }

    #[test]
    fn unknown_tool_is_an_error_without_code() {
        let out = call(9, json!({"name": "self.fly"}));
        assert_eq!(
            out,
            json!({"jsonrpc": "2.0", "id": 9, "error": {"message": "Unknown tool: self.fly"}})
        );
    }

    #[test]
    fn tools_call_checks_params_name_and_arguments() {
        let no_params = reply(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call"}));
        assert_eq!(no_params.expect("reply")["error"]["message"], "Missing params");
        assert_eq!(call(1, json!({}))["error"]["message"], "Missing name");
        let bad_args = call(1, json!({"name": "self.fly", "arguments": 5}));
        assert_eq!(bad_args["error"]["message"], "Invalid arguments");
    }

    #[test]
    fn other_method_is_not_implemented() {
        let out = reply(json!({"jsonrpc": "2.0", "id": 5, "method": "ping"})).expect("reply");
        assert_eq!(out["error"]["message"], "Method not implemented: ping");
    }

    #[test]
    fn malformed_requests_and_notifications_get_no_reply() {
        let cases = [
            json!({"jsonrpc": "2.0", "id": "1", "method": "initialize"}),
            json!({"jsonrpc": "1.0", "id": 1, "method": "initialize"}),
            json!({"id": 1, "method": "initialize"}),
            json!({"jsonrpc": "2.0", "id": 1, "method": 3}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": []}),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "notifications/cancelled"}),
            json!("not an object"),
        ];
        for payload in cases {
            assert_eq!(reply(payload.clone()), None, "{payload}");
        }
    }

    #[test]
    fn request_builders_match_py() {
        let init = mcp_initialize_request(1);
        assert_eq!(init["params"]["clientInfo"]["name"], "XiaozhiClient");
        assert_eq!(init["params"]["capabilities"]["roots"]["listChanged"], true);
        assert_eq!(
            mcp_tools_list_request(2, None),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        );
        assert_eq!(
            mcp_tools_list_request(2, Some("c")),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"cursor": "c"}})
        );
    }
}
