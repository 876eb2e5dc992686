//! Command-line definitions: raw values only. `commands/` turns them into
//! settings and runs.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "modbridge",
    version,
    about = "Forwards Cativa posts that match your rules to Slack and Discord moderators",
    after_help = "Exit codes: 0 success; 1 check/test found problems or a command failed; 2 configuration or rules errors (or an invalid RUST_LOG) at start-up; 64 usage error (unknown command or option)."
)]
pub struct Cli {
    /// Configuration file (default: modbridge.toml in the current directory, if present).
    #[arg(long, global = true, value_name = "PATH", env = "MODBRIDGE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the webhook server.
    Serve {
        /// Print cards to standard output instead of sending them (no tokens,
        /// no secret, no Redis needed). Also MODBRIDGE_DRY_RUN=1.
        #[arg(long)]
        dry_run: bool,
    },
    /// Sign a payload exactly as Cativa does and send it to a running modbridge.
    Send {
        /// The JSON payload, like examples/post_created.json.
        file: PathBuf,
        /// Where to send it.
        #[arg(long, default_value = "http://127.0.0.1:8080/webhooks/cativa")]
        url: String,
        /// Reuse an execution ID (to see duplicate handling); default: a new one.
        #[arg(long)]
        execution_id: Option<String>,
    },
    /// Validate the configuration and every rules file.
    Check {
        /// Also ask the platforms. Slack: `auth.test` proves SLACK_BOT_TOKEN;
        /// `conversations.info` (needs channels:read / groups:read) shows each
        /// channel exists and whether the bot is a member. Discord: proves
        /// DISCORD_BOT_TOKEN, reads each bot channel, checks each webhook variable.
        #[arg(long)]
        live: bool,
        /// With --live: post a clearly marked test card to every Slack and
        /// Discord destination (the only full proof that cards can be delivered).
        #[arg(long, requires = "live")]
        send_test: bool,
    },
    /// Show how the rules treat a payload, and the cards that would be sent.
    Explain {
        /// The JSON payload, like examples/post_created.json.
        payload: PathBuf,
    },
    /// Run every [[test]] in every rules file.
    Test,
    /// Count how the rules treat a corpus of raw post_created bodies (one per
    /// line), and with --baseline which posts would gain or lose a card.
    Backtest {
        /// A JSONL file, like the one `[capture]` writes.
        file: PathBuf,
        /// Another rules directory (same destinations) to compare against.
        #[arg(long, value_name = "DIR")]
        baseline: Option<PathBuf>,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the cards parked in Redis for broken destinations, and the dead
    /// letters (cards a platform refused): ID, destination, age, reason.
    Parked {
        #[command(subcommand)]
        action: Option<ParkedAction>,
    },
    /// Deliver the parked cards now (each once), destination by destination;
    /// or one parked card or dead letter by its ID (after a fix).
    Replay {
        /// The ID `modbridge parked` shows (default: every parked card).
        id: Option<String>,
        /// Only this target, like slack:C0123ABCD (default: every one).
        #[arg(long, conflicts_with = "id")]
        target: Option<String>,
    },
    /// What moderators decided about each match's cards (kept in Redis): per
    /// rules file and match, cards, resolved, false positives, precision =
    /// resolved / (resolved + false positive), median time to claim and to
    /// close.
    Stats {
        /// How many days back, today included (at most 90).
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=90))]
        days: u32,
        /// Print one JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Ask a running modbridge whether it is alive (GET /healthz): exit 0 if
    /// it answers 200, 1 otherwise. The container image's HEALTHCHECK.
    Probe {
        /// What to ask (default: /healthz on MODBRIDGE_LISTEN's port at
        /// 127.0.0.1 when the variable is set, else http://127.0.0.1:8080/healthz).
        #[arg(long)]
        url: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3, value_name = "SECS")]
        timeout: u64,
    },
    /// Print a shell completion script to standard output
    /// (bash: `source <(modbridge completions bash)`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ParkedAction {
    /// Remove one parked card or dead letter (it will not be delivered).
    Drop {
        /// The ID `modbridge parked` shows.
        id: String,
    },
}
