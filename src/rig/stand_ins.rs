//! The AI provider stand-ins as a run starts them: in-process when the plan
//! says where (`--providers ADDR` or `[providers] listen`), announced in the
//! words of the server's config.yaml.

use crate::config::{Plan, Target};
use crate::providers::ProvidersServer;

/// Prints where each stand-in is, in the words of the server's config.yaml.
pub fn announce_stand_ins(server: &ProvidersServer) {
    let url = server.url();
    let ws = url.replacen("http://", "ws://", 1);
    eprintln!("AI provider stand-ins listening on {url}");
    eprintln!("  LLM  (type: openai)      url: {url}/v1");
    eprintln!("  TTS  (type: openai)      api_url: {url}/v1/audio/speech");
    eprintln!("  ASR  (type: fun_server)  {ws}/  (host, port, is_ssl: false)");
    eprintln!("  ASR  (type: openai)      base_url: {url}/v1/audio/transcriptions");
    eprintln!("  figures: GET {url}/stats");
    if server.addr.ip().is_loopback() {
        eprintln!("  (loopback only: a server in a container needs --listen 0.0.0.0:PORT)");
    }
}

/// Starts the stand-ins in-process when the plan names an address.
pub async fn start_stand_ins(plan: &Plan) -> anyhow::Result<Option<ProvidersServer>> {
    let Some(listen) = &plan.providers.listen else {
        if !plan.providers.llm_delay_sweep.is_empty() {
            anyhow::bail!(
                "--llm-delay sweeps the stand-ins' LLM delay: also give --providers ADDR, the address your server's LLM points at"
            );
        }
        return Ok(None);
    };
    if plan.target == Target::BuiltInMock {
        if !plan.providers.llm_delay_sweep.is_empty() {
            anyhow::bail!(
                "--llm-delay needs a real server (--url) whose LLM calls the stand-ins; the built-in mock has its own delays ([mock] llm_delay)"
            );
        }
        eprintln!(
            "note: the built-in mock does not call AI providers; the stand-ins only see requests from a real server"
        );
    }
    let server = ProvidersServer::start(listen, plan.providers.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the AI provider stand-ins on {listen}: {e}"))?;
    announce_stand_ins(&server);
    Ok(Some(server))
}
