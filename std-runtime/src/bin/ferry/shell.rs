//! `ferry shell`: the FTP-like shell of the original notes (ls, cd, get,
//! put, …). Line editing and history on a terminal; a batch of lines when
//! stdin is not one, stopping at the first failing line (a line starting
//! with `-` may fail, as in `sftp -b`).

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use ferry::{exit, Client, FerryError, TransferOptions};

use crate::output::{exec_and_print, format_entry, format_stat};

const HELP: &str = "\
commands:
  ls [DIR]               list a remote directory
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
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| FerryError::Other(e.to_string()))?;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (may_fail, text) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        match shell.line(text) {
            Ok(None) => return Ok(exit::OK),
            Ok(Some(code)) if code == exit::OK || may_fail => {}
            Ok(Some(code)) => {
                eprintln!("ferry: line {}: {text}: failed", n + 1);
                return Ok(code);
            }
            Err(e) if may_fail => eprintln!("ferry: line {} (ignored): {text}: {e}", n + 1),
            Err(e) => {
                eprintln!("ferry: line {}: {text}: {e}", n + 1);
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
