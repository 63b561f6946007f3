//! `ferry shell`: the FTP-like shell of the original notes (ls, cd, get,
//! put, …). Line editing and history on a terminal; a batch of lines when
//! stdin is not one, stopping at the first failing line (a line starting
//! with `-` may fail, as in `sftp -b`). In a batch, consecutive `get` (or
//! `put`) lines of single files that are already there to read go out as
//! one pipelined group: one round trip for the group, not two per line;
//! after a failing line nothing later in its group is stored.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use ferry::{exit, Client, FerryError, GetItem, PutItem, TransferOptions};

use crate::output::{exec_and_print, format_entry, format_stat, print_long};

const HELP: &str = "\
commands:
  ls [-l] [DIR...]       list remote directories (several: one batch;
                         -l: kind, permissions, size, time)
  pwd                    remote directory
  cd DIR                 change remote directory
  get REMOTE [LOCAL]     download (verified); flags: -r --resume --overwrite fail|keep-both|replace
  put LOCAL [REMOTE]     upload (verified); same flags
  rm PATH                remove a remote file or empty directory
  mkdir DIR              create a remote directory
  mv OLD NEW             rename; flag --overwrite=fail|replace (default fail:
                         an existing NEW is refused)
  stat PATH              describe a remote path
  exec CMD [ARGS...]     run a command on the server
  lcd DIR, lpwd, lls     local directory
  help, exit
A line starting with '-' may fail without stopping a batch.";

/// Splits a line into words; single and double quotes group.
pub fn split_words(line: &str) -> Result<Vec<String>, FerryError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(FerryError::Usage("unclosed quote".into()));
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

fn transfer_flags(words: &mut Vec<String>) -> Result<TransferOptions, FerryError> {
    let mut t = TransferOptions {
        quiet: true,
        ..TransferOptions::default()
    };
    let mut rest = Vec::new();
    let mut words_in = words.drain(..);
    while let Some(w) = words_in.next() {
        // A value follows its option as on the command line: `--overwrite
        // replace` or `--overwrite=replace`.
        let overwrite = match w.split_once('=') {
            Some(("--overwrite", v)) => Some(v.to_string()),
            _ if w == "--overwrite" => Some(words_in.next().ok_or_else(|| {
                FerryError::Usage("--overwrite needs fail, keep-both or replace".into())
            })?),
            _ => None,
        };
        if let Some(v) = overwrite {
            t.overwrite = match v.as_str() {
                "fail" => ferry_core::Overwrite::Fail,
                "keep-both" => ferry_core::Overwrite::KeepBoth,
                "replace" => ferry_core::Overwrite::Replace,
                v => {
                    return Err(FerryError::Usage(format!(
                        "--overwrite {v:?}: expected fail, keep-both or replace"
                    )))
                }
            };
            continue;
        }
        match w.as_str() {
            "-r" => t.recursive = true,
            "--resume" => t.resume = true,
            f if f.starts_with("--") => return Err(FerryError::Usage(format!("unknown flag {f}"))),
            _ => rest.push(w),
        }
    }
    drop(words_in);
    *words = rest;
    Ok(t)
}

/// `mv`'s flags: whether to replace an existing target
/// (`--overwrite=replace`; `fail` is the default, `keep-both` means
/// nothing for a rename).
fn mv_flags(words: &mut Vec<String>) -> Result<bool, FerryError> {
    let mut replace = false;
    let mut rest = Vec::new();
    for w in words.drain(..) {
        match w.as_str() {
            "--overwrite=fail" => replace = false,
            "--overwrite=replace" => replace = true,
            f if f.starts_with("--") => {
                return Err(FerryError::Usage(format!(
                    "mv: unknown flag {f} (--overwrite=fail|replace)"
                )))
            }
            _ => rest.push(w),
        }
    }
    *words = rest;
    Ok(replace)
}

/// State kept across lines.
/// Which way a group of transfer lines goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Get,
    Put,
}

/// One line of a pipelined group (a put keeps the local name as typed).
enum Item {
    Get(GetItem),
    Put(String, PutItem),
}

pub struct Shell<'c> {
    client: &'c mut Client,
    local: PathBuf,
}

impl<'c> Shell<'c> {
    /// A shell over a logged-in client, in the current local directory.
    pub fn new(client: &'c mut Client) -> Self {
        Shell {
            client,
            local: std::env::current_dir().unwrap_or_else(|_| ".".into()),
        }
    }

    fn local_path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.local.join(p)
        }
    }

    /// A plain single-file `get` or `put` line (no `-r`, no `--resume`,
    /// not into a directory), as one item of a pipelined group: `None`
    /// for any other line.
    fn transfer_item(&self, line: &str) -> Option<(Direction, TransferOptions, Item)> {
        let mut words = split_words(line).ok()?;
        let cmd = words.first()?.clone();
        words.remove(0);
        let opts = transfer_flags(&mut words).ok()?;
        if opts.recursive || opts.resume || words.is_empty() || words.len() > 2 {
            return None;
        }
        match cmd.as_str() {
            "get" => {
                let remote = words[0].clone();
                let name = remote.trim_end_matches('/').rsplit('/').next()?.to_string();
                let local = match words.get(1) {
                    Some(l) => self.local_path(l),
                    None => self.local.join(&name),
                };
                if local.is_dir() || name.is_empty() {
                    return None;
                }
                let item = GetItem {
                    remote,
                    local,
                    size: 0,
                };
                Some((Direction::Get, opts, Item::Get(item)))
            }
            "put" => {
                let path = self.local_path(&words[0]);
                let md = std::fs::metadata(&path).ok().filter(|m| m.is_file())?;
                let name = path.file_name()?.to_string_lossy().into_owned();
                // Only an explicit file name (one not ending in `/`): a
                // remote directory would need the server's answer first.
                let remote = match words.get(1) {
                    Some(r) if !r.ends_with('/') => r.clone(),
                    Some(_) => return None,
                    None => name,
                };
                let item = PutItem {
                    local: path,
                    remote,
                    size: md.len(),
                };
                Some((Direction::Put, opts, Item::Put(words[0].clone(), item)))
            }
            _ => None,
        }
    }

    /// Runs a group of transfer lines as one pipelined batch; one outcome
    /// per line, in order, printed as [`Self::line`] would.
    fn group(
        &mut self,
        opts: &TransferOptions,
        may_fail: bool,
        items: Vec<Item>,
    ) -> Vec<Result<(), FerryError>> {
        let mut opts = opts.clone();
        opts.stop_at_first_error = !may_fail;
        let gets: Vec<GetItem> = items
            .iter()
            .filter_map(|i| match i {
                Item::Get(g) => Some(g.clone()),
                Item::Put(..) => None,
            })
            .collect();
        if !gets.is_empty() {
            return self
                .client
                .get_batch(&gets, &opts)
                .into_iter()
                .zip(&gets)
                .map(|(r, g)| r.map(|n| println!("got {} ({n} bytes, verified)", g.remote)))
                .collect();
        }
        let puts: Vec<(String, PutItem)> = items
            .into_iter()
            .filter_map(|i| match i {
                Item::Put(shown, p) => Some((shown, p)),
                Item::Get(_) => None,
            })
            .collect();
        let files: Vec<PutItem> = puts.iter().map(|(_, p)| p.clone()).collect();
        self.client
            .put_batch(&files, &opts)
            .into_iter()
            .zip(&puts)
            .map(|(r, (shown, _))| r.map(|stored| println!("put {shown} as {stored} (verified)")))
            .collect()
    }

    /// Runs one line; `Ok(None)` means exit.
    pub fn line(&mut self, line: &str) -> Result<Option<i32>, FerryError> {
        let mut words = split_words(line)?;
        let Some(cmd) = words.first().cloned() else {
            return Ok(Some(exit::OK));
        };
        words.remove(0);
        let arg = |i: usize| -> Result<String, FerryError> {
            words
                .get(i)
                .cloned()
                .ok_or_else(|| FerryError::Usage(format!("{cmd}: missing argument (try help)")))
        };
        match cmd.as_str() {
            "help" | "?" => println!("{HELP}"),
            "exit" | "quit" | "bye" => return Ok(None),
            "ls" | "dir" if words.first().is_some_and(|w| w == "-l") => {
                // Long format: every name's stat and listing in one batch.
                let names: Vec<String> = match &words[1..] {
                    [] => vec![".".into()],
                    names => names.to_vec(),
                };
                print_long(self.client, &names)?;
            }
            "ls" | "dir" if words.len() > 1 => {
                // Several directories: one pipelined batch (issue 28),
                // each under a heading; the first failure is the line's.
                let mut first_error = None;
                for (i, (dir, listed)) in
                    words.iter().zip(self.client.list_batch(&words)).enumerate()
                {
                    match listed {
                        Ok(entries) => {
                            println!("{}{dir}:", if i > 0 { "\n" } else { "" });
                            for e in entries {
                                println!("{}", format_entry(&e));
                            }
                        }
                        Err(e) => {
                            let e = FerryError::remote(dir, e);
                            match first_error {
                                None => first_error = Some(e),
                                Some(_) => eprintln!("ferry: ls {e}"),
                            }
                        }
                    }
                }
                if let Some(e) = first_error {
                    return Err(e);
                }
            }
            "ls" | "dir" => {
                let dir = words.first().cloned().unwrap_or_default();
                for e in self.client.list(&dir)? {
                    println!("{}", format_entry(&e));
                }
            }
            "pwd" => println!("{}", self.client.pwd()?),
            "cd" => println!("{}", self.client.cd(&arg(0)?)?),
            "stat" => println!("{}", format_stat(&self.client.stat(&arg(0)?)?)),
            "rm" => self.client.remove(&arg(0)?)?,
            "mkdir" => self.client.mkdir(&arg(0)?)?,
            "mv" | "rename" => {
                let replace = mv_flags(&mut words)?;
                let (from, to) = match words.as_slice() {
                    [from, to] => (from, to),
                    _ => return Err(FerryError::Usage("mv: OLD NEW expected (try help)".into())),
                };
                self.client.rename(from, to, replace)?
            }
            "get" => {
                let opts = transfer_flags(&mut words)?;
                let remote = words
                    .first()
                    .cloned()
                    .ok_or_else(|| FerryError::Usage("get: missing argument".into()))?;
                let local = words
                    .get(1)
                    .map_or_else(|| self.local.clone(), |l| self.local_path(l));
                let n = self.client.get_file(&remote, &local, &opts)?;
                println!("got {remote} ({n} bytes, verified)");
            }
            "put" => {
                let opts = transfer_flags(&mut words)?;
                let local = words
                    .first()
                    .cloned()
                    .ok_or_else(|| FerryError::Usage("put: missing argument".into()))?;
                let path = self.local_path(&local);
                let remote = words.get(1).cloned().unwrap_or_else(|| {
                    path.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                });
                let stored = self.client.put_file(&path, &remote, &opts)?;
                println!("put {local} as {stored} (verified)");
            }
            "exec" | "!" => {
                let code = exec_and_print(self.client, &words.join(" "), "")?;
                if code != exit::OK {
                    return Ok(Some(code));
                }
            }
            "lcd" => {
                let p = self.local_path(&arg(0)?);
                if !p.is_dir() {
                    return Err(FerryError::local(
                        &p,
                        std::io::Error::from(std::io::ErrorKind::NotADirectory),
                    ));
                }
                self.local = p;
            }
            "lpwd" => println!("{}", self.local.display()),
            "lls" => {
                let dir = words
                    .first()
                    .map_or_else(|| self.local.clone(), |d| self.local_path(d));
                let mut names: Vec<(String, u64, bool)> = std::fs::read_dir(&dir)
                    .map_err(|e| FerryError::local(&dir, e))?
                    .filter_map(Result::ok)
                    .filter_map(|e| {
                        let md = e.metadata().ok()?;
                        Some((
                            e.file_name().to_string_lossy().into_owned(),
                            md.len(),
                            md.is_dir(),
                        ))
                    })
                    .collect();
                names.sort();
                for (n, size, dir) in names {
                    println!("{size:>12}  {n}{}", if dir { "/" } else { "" });
                }
            }
            other => {
                return Err(FerryError::Usage(format!(
                    "unknown command {other:?} (try help)"
                )))
            }
        }
        Ok(Some(exit::OK))
    }
}

/// Runs the shell: interactive on a terminal, batch otherwise.
pub fn run(client: &mut Client) -> Result<i32, FerryError> {
    let mut shell = Shell::new(client);
    if std::io::stdin().is_terminal() {
        let mut rl =
            rustyline::DefaultEditor::new().map_err(|e| FerryError::Other(e.to_string()))?;
        loop {
            match rl.readline("ferry> ") {
                Ok(line) => {
                    let _ = rl.add_history_entry(line.as_str());
                    match shell.line(&line) {
                        Ok(None) => return Ok(exit::OK),
                        Ok(Some(_)) => {}
                        Err(e) => eprintln!("ferry: {}: {e}", line.trim()),
                    }
                }
                Err(rustyline::error::ReadlineError::Interrupted) => continue,
                Err(_) => return Ok(exit::OK),
            }
        }
    }
    // Lines come from a reader thread, so lines already written can be
    // grouped without waiting for more (a script may wait for output
    // before writing its next line).
    let (tx, rx) = std::sync::mpsc::channel::<std::io::Result<String>>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut pending: std::collections::VecDeque<(usize, String)> = Default::default();
    let mut n = 0;
    let mut next = |pending: &mut std::collections::VecDeque<(usize, String)>, wait: bool| {
        if let Some(l) = pending.pop_front() {
            return Ok(Some(l));
        }
        let got = if wait {
            rx.recv().ok()
        } else {
            rx.try_recv().ok()
        };
        match got {
            Some(Ok(l)) => {
                n += 1;
                Ok(Some((n, l)))
            }
            Some(Err(e)) => Err(FerryError::Other(e.to_string())),
            None => Ok(None),
        }
    };
    while let Some((n, line)) = next(&mut pending, true)? {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (may_fail, text) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest.to_string()),
            None => (false, trimmed.to_string()),
        };
        // A transfer line: gather the ones right behind it that go the
        // same way with the same options and are already here.
        if let Some((dir, opts, first)) = shell.transfer_item(&text) {
            let mut group = vec![(n, may_fail, text.clone(), first)];
            while let Some((m, l)) = next(&mut pending, false)? {
                let t = l.trim();
                let (mf, tx) = match t.strip_prefix('-') {
                    Some(rest) => (true, rest.to_string()),
                    None => (false, t.to_string()),
                };
                match shell.transfer_item(&tx) {
                    Some((d, o, item))
                        if d == dir
                            && o.overwrite == opts.overwrite
                            && mf == may_fail
                            && !t.is_empty() =>
                    {
                        group.push((m, mf, tx, item))
                    }
                    _ => {
                        pending.push_back((m, l));
                        break;
                    }
                }
            }
            if group.len() > 1 {
                let lines: Vec<(usize, bool, String)> = group
                    .iter()
                    .map(|(m, f, t, _)| (*m, *f, t.clone()))
                    .collect();
                let items = group.into_iter().map(|(_, _, _, i)| i).collect();
                for ((m, mf, t), r) in lines.into_iter().zip(shell.group(&opts, may_fail, items)) {
                    match r {
                        Ok(()) => {}
                        Err(e) if mf => eprintln!("ferry: line {m} (ignored): {t}: {e}"),
                        Err(e) => {
                            eprintln!("ferry: line {m}: {t}: {e}");
                            return Ok(e.exit_code());
                        }
                    }
                }
                continue;
            }
        }
        match shell.line(&text) {
            Ok(None) => return Ok(exit::OK),
            Ok(Some(code)) if code == exit::OK || may_fail => {}
            Ok(Some(code)) => {
                eprintln!("ferry: line {n}: {text}: failed");
                return Ok(code);
            }
            Err(e) if may_fail => eprintln!("ferry: line {n} (ignored): {text}: {e}"),
            Err(e) => {
                eprintln!("ferry: line {n}: {text}: {e}");
                return Ok(e.exit_code());
            }
        }
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_with_quotes() {
        assert_eq!(
            split_words(r#"put "my file.txt" '测 试'"#).unwrap(),
            ["put", "my file.txt", "测 试"]
        );
        assert_eq!(split_words("  ls   ").unwrap(), ["ls"]);
        assert_eq!(split_words("get ''").unwrap(), ["get", ""]);
        assert!(split_words("get \"x").is_err());
    }

    #[test]
    fn overwrite_takes_its_value_with_a_space_or_an_equals_sign() {
        for line in [
            "a.txt --overwrite replace b.txt",
            "--overwrite=replace a.txt b.txt",
        ] {
            let mut w = split_words(line).unwrap();
            let t = transfer_flags(&mut w).unwrap();
            assert_eq!(t.overwrite, ferry_core::Overwrite::Replace, "{line}");
            assert_eq!(w, ["a.txt", "b.txt"], "{line}");
        }
        for bad in ["a --overwrite", "a --overwrite never", "--overwrite=x a"] {
            let mut w = split_words(bad).unwrap();
            assert!(transfer_flags(&mut w).is_err(), "{bad}");
        }
    }
}
