//! Lua scripts, kept as `.lua` files next to the code that uses them, and
//! the one place that sends them.
//!
//! A script goes out as `EVALSHA <sha1>`: Redis runs its cached copy. A
//! server that does not have it (restarted, `SCRIPT FLUSH`, a new replica
//! promoted) answers `NOSCRIPT` *without running anything*, so re-sending
//! the call as `EVAL <source>` is safe and loads it for the next time.
//!
//! * [`LuaScript::call`] — one call;
//! * [`LuaScript::call_many`] — many calls of one script in one pipeline;
//! * [`run_pipeline`] — a pipeline of items, each one or more [`Command`]s
//!   (plain commands and script calls mixed), one result per item.
//!
//! In every case only the script calls that answered `NOSCRIPT` are sent
//! again; a plain command is never sent twice.

use fred::clients::Pipeline;
use fred::error::{Error, ErrorKind};
use fred::interfaces::ClientLike;
use fred::prelude::Client;
use fred::types::{ClusterHash, CustomCommand, Value};

/// A Lua script: its source and SHA-1, computed once.
#[derive(Clone, Debug)]
pub struct LuaScript {
    source: &'static str,
    sha1: String,
}

impl LuaScript {
    /// The script with this source (usually `include_str!("x.lua")`).
    pub fn new(source: &'static str) -> Self {
        Self {
            source,
            sha1: fred::util::sha1_hash(source),
        }
    }

    /// The SHA-1 Redis knows the script by.
    pub fn sha1(&self) -> &str {
        &self.sha1
    }

    /// Runs the script once on `client` (any client, e.g. one with
    /// per-command options), falling back to `EVAL` on `NOSCRIPT`.
    pub async fn call<C: ClientLike>(
        &self,
        client: &C,
        keys: Vec<Value>,
        args: Vec<Value>,
    ) -> Result<Value, Error> {
        let (cmd, wire) = self.wire(Mode::BySha, &keys, &args);
        match client.custom::<Value, Value>(cmd, wire).await {
            Err(e) if is_noscript(&e) => {
                let (cmd, wire) = self.wire(Mode::BySource, &keys, &args);
                client.custom::<Value, Value>(cmd, wire).await
            }
            other => other,
        }
    }

    /// Runs the script once per `(keys, args)` in one pipeline; one result
    /// per call, in order.
    pub async fn call_many(
        &self,
        client: &Client,
        calls: Vec<(Vec<Value>, Vec<Value>)>,
    ) -> Vec<Result<Value, Error>> {
        let items = calls
            .into_iter()
            .map(|(keys, args)| vec![Command::script(self, keys, args)])
            .collect();
        run_pipeline(client, items).await
    }

    /// The command and its arguments: `EVALSHA sha n keys… args…` or
    /// `EVAL source n keys… args…`, hashed on the first key (Redis Cluster).
    fn wire(&self, send: Mode, keys: &[Value], args: &[Value]) -> (CustomCommand, Vec<Value>) {
        let (name, head): (&'static str, Value) = match send {
            Mode::BySha => ("EVALSHA", self.sha1.as_str().into()),
            Mode::BySource => ("EVAL", self.source.into()),
        };
        let hash = if keys.is_empty() {
            ClusterHash::Random
        } else {
            ClusterHash::Offset(2)
        };
        let mut wire = Vec::with_capacity(2 + keys.len() + args.len());
        wire.push(head);
        wire.push((keys.len() as i64).into());
        wire.extend(keys.iter().cloned());
        wire.extend(args.iter().cloned());
        (CustomCommand::new_static(name, hash, false), wire)
    }
}

/// How a script call is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `EVALSHA`: the server's cached copy.
    BySha,
    /// `EVAL`: the source (after `NOSCRIPT`).
    BySource,
}

/// One command of a pipeline item.
#[derive(Clone, Debug)]
pub enum Command<'s> {
    /// A plain command, e.g. `HSET key field value`.
    Plain {
        /// Command name (`HSET`, `XACK`, …).
        name: &'static str,
        /// Its arguments, key first.
        args: Vec<Value>,
    },
    /// A call of a Lua script.
    Script {
        /// The script.
        script: &'s LuaScript,
        /// `KEYS`.
        keys: Vec<Value>,
        /// `ARGV`.
        args: Vec<Value>,
    },
}

impl<'s> Command<'s> {
    /// A plain command `name args…`.
    pub fn plain(name: &'static str, args: Vec<Value>) -> Self {
        Command::Plain { name, args }
    }

    /// A call of `script`.
    pub fn script(script: &'s LuaScript, keys: Vec<Value>, args: Vec<Value>) -> Self {
        Command::Script { script, keys, args }
    }
}

fn is_noscript(e: &Error) -> bool {
    e.details().starts_with("NOSCRIPT")
}

/// Sends `items` as one pipeline and answers one result per item, in order.
/// An item's result is its first error, or else the reply of its first
/// command (`Null` for an item without commands). Script calls that
/// answered `NOSCRIPT` go again, with their source, in a second pipeline.
pub async fn run_pipeline(
    client: &Client,
    items: Vec<Vec<Command<'_>>>,
) -> Vec<Result<Value, Error>> {
    let sizes: Vec<usize> = items.iter().map(Vec::len).collect();
    // Script calls are kept (by their position) in case they must go again.
    let mut scripts: Vec<(usize, Command<'_>)> = Vec::new();
    let mut wire = Vec::with_capacity(sizes.iter().sum());
    for (i, c) in items.into_iter().flatten().enumerate() {
        match c {
            Command::Plain { name, args } => wire.push((
                CustomCommand::new_static(name, ClusterHash::FirstKey, false),
                args,
            )),
            Command::Script {
                script,
                ref keys,
                ref args,
            } => {
                wire.push(script.wire(Mode::BySha, keys, args));
                scripts.push((i, c));
            }
        }
    }
    let mut replies = send(client, wire).await;
    let again: Vec<(usize, (CustomCommand, Vec<Value>))> = scripts
        .into_iter()
        .filter(|(i, _)| matches!(&replies[*i], Err(e) if is_noscript(e)))
        .filter_map(|(i, c)| match c {
            Command::Script { script, keys, args } => {
                Some((i, script.wire(Mode::BySource, &keys, &args)))
            }
            Command::Plain { .. } => None,
        })
        .collect();
    if !again.is_empty() {
        let (positions, resend): (Vec<usize>, Vec<_>) = again.into_iter().unzip();
        let second = send(client, resend).await;
        for (i, reply) in positions.into_iter().zip(second) {
            replies[i] = reply;
        }
    }
    let mut replies = replies.into_iter();
    sizes
        .into_iter()
        .map(|n| {
            let mut first: Option<Value> = None;
            let mut error: Option<Error> = None;
            for _ in 0..n {
                match replies.next() {
                    Some(Ok(v)) => {
                        first.get_or_insert(v);
                    }
                    Some(Err(e)) => {
                        error.get_or_insert(e);
                    }
                    None => {
                        error.get_or_insert(missing_reply());
                    }
                }
            }
            match error {
                Some(e) => Err(e),
                None => Ok(first.unwrap_or(Value::Null)),
            }
        })
        .collect()
}

fn missing_reply() -> Error {
    Error::new(ErrorKind::Unknown, "missing pipeline reply")
}

/// One pipeline; one result per command. A command that cannot be queued
/// (its arguments do not encode) gets its own error, so replies stay aligned.
async fn send(
    client: &Client,
    commands: Vec<(CustomCommand, Vec<Value>)>,
) -> Vec<Result<Value, Error>> {
    let pipeline: Pipeline<Client> = client.pipeline();
    let mut queued: Vec<Result<(), Error>> = Vec::with_capacity(commands.len());
    for (cmd, args) in commands {
        let q = pipeline.custom::<(), Value>(cmd, args).await;
        if let Err(e) = &q {
            tracing::error!(error = %e, "could not queue a command in the pipeline");
        }
        queued.push(q);
    }
    let mut replies = if queued.iter().any(Result::is_ok) {
        pipeline.try_all::<Value>().await.into_iter()
    } else {
        Vec::new().into_iter()
    };
    queued
        .into_iter()
        .map(|q| match q {
            Err(e) => Err(e),
            Ok(()) => replies.next().unwrap_or_else(|| Err(missing_reply())),
        })
        .collect()
}
