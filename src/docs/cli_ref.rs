//! docs/cli.md and the man pages: every command and flag from clap's command tree (`Cli::command()`),
//! and the exit statuses from src/exit.rs.

use clap::{Arg, ArgAction, Command, CommandFactory};

use super::{DocsError, Files, MARKER, cell};
use crate::cli::args::Cli;

/// Commands that print a machine-readable report on stdout with `--output json` (by their path below
/// `kimage`). The first word of each must be a command of the CLI (a test checks it); subcommands that
/// are not wired yet are still listed, since this is the contract the report promises.
pub const JSON_REPORTS: &[&str] = &["validate", "plan", "pki status", "lock", "build"];

/// The source of the exit-status constants, read at compile time so their doc comments are the docs.
const EXIT_RS: &str = include_str!("../exit.rs");

/// One exit status: its number, constant name and meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitStatus {
    pub code: u8,
    pub name: String,
    pub meaning: String,
}

/// The exit statuses: 0, then every `pub const NAME: u8 = N;` in `error::exit` with its doc comment.
pub fn exit_statuses() -> Vec<ExitStatus> {
    let mut out = vec![ExitStatus {
        code: 0,
        name: "SUCCESS".into(),
        meaning: "The command did what it was asked.".into(),
    }];
    let mut doc: Vec<&str> = Vec::new();
    for line in EXIT_RS.lines() {
        let line = line.trim();
        if line.starts_with("//!") {
            continue;
        }
        if let Some(d) = line.strip_prefix("///") {
            doc.push(d.trim());
        } else if let Some(rest) = line.strip_prefix("pub const ") {
            // NAME: u8 = N;
            let (name, value) = rest.split_once(':').unwrap_or((rest, ""));
            let code = value
                .split('=')
                .nth(1)
                .map(|v| v.trim().trim_end_matches(';').trim())
                .and_then(|v| v.parse().ok());
            if let Some(code) = code {
                out.push(ExitStatus {
                    code,
                    name: name.trim().to_string(),
                    meaning: doc.join(" "),
                });
            }
            doc.clear();
        } else if !line.starts_with("//") {
            doc.clear();
        }
    }
    out
}

/// The command tree as users see it: built (globals propagated, bin names set), without `help`.
fn command() -> Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

fn visible_subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands().filter(|c| !c.is_hide_set())
}

fn is_builtin(a: &Arg) -> bool {
    matches!(
        a.get_action(),
        ArgAction::Help | ArgAction::HelpLong | ArgAction::Version
    )
}

/// `-p, --profile <PROFILE>` / `<PATH>...`
fn arg_form(a: &Arg) -> String {
    let value = || -> String {
        let names: Vec<String> = a
            .get_value_names()
            .map(|n| n.iter().map(|s| s.to_string()).collect())
            .unwrap_or_else(|| vec![a.get_id().as_str().to_ascii_uppercase()]);
        names
            .iter()
            .map(|n| format!("<{n}>"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let takes_value = a.get_num_args().is_some_and(|r| r.takes_values())
        && !matches!(
            a.get_action(),
            ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count
        );
    if a.is_positional() {
        let many = a.get_num_args().is_some_and(|r| r.max_values() > 1);
        return format!("{}{}", value(), if many { "..." } else { "" });
    }
    let mut names = Vec::new();
    if let Some(s) = a.get_short() {
        names.push(format!("-{s}"));
    }
    if let Some(l) = a.get_long() {
        names.push(format!("--{l}"));
    }
    let mut form = names.join(", ");
    if takes_value {
        form.push(' ');
        form.push_str(&value());
    }
    form
}

/// Everything else worth knowing about an argument: values, default, env, repetition.
fn arg_details(a: &Arg) -> String {
    let mut help = a
        .get_long_help()
        .or(a.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    let mut extra = Vec::new();
    if a.is_required_set() {
        extra.push("required".to_string());
    }
    let possible: Vec<String> = a
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| format!("`{}`", v.get_name()))
        .collect();
    let is_flag = matches!(a.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
    if !possible.is_empty() && !is_flag {
        extra.push(format!("one of {}", possible.join(", ")));
    }
    let defaults: Vec<String> = a
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if !defaults.is_empty() && !is_flag {
        extra.push(format!("default `{}`", defaults.join(",")));
    }
    if let Some(env) = a.get_env() {
        extra.push(format!("env `{}`", env.to_string_lossy()));
    }
    if matches!(a.get_action(), ArgAction::Append) {
        let mut r = "repeatable".to_string();
        if let Some(d) = a.get_value_delimiter() {
            r.push_str(&format!(" or `{d}`-separated"));
        }
        extra.push(r);
    }
    if a.is_global_set() {
        extra.push("global: accepted before or after the command".into());
    }
    if !extra.is_empty() {
        if !help.is_empty() && !help.ends_with('.') {
            help.push('.');
        }
        help.push_str(&format!(" ({})", extra.join("; ")));
    }
    help
}

fn usage(cmd: &Command) -> String {
    let mut c = cmd.clone();
    let u = c.render_usage().to_string();
    u.strip_prefix("Usage: ").unwrap_or(&u).trim().to_string()
}

fn about(cmd: &Command) -> String {
    cmd.get_long_about()
        .or(cmd.get_about())
        .map(|s| s.to_string())
        .unwrap_or_default()
}

fn full_name(cmd: &Command) -> String {
    cmd.get_bin_name().unwrap_or(cmd.get_name()).to_string()
}

/// `kimage pki status` → `kimage-pki-status`.
fn anchor(cmd: &Command) -> String {
    full_name(cmd).replace(' ', "-")
}

fn reports_json(cmd: &Command) -> bool {
    let path = full_name(cmd);
    let path = path.strip_prefix("kimage ").unwrap_or("");
    JSON_REPORTS.contains(&path)
}

fn args_table(out: &mut String, args: &[&Arg]) {
    if args.is_empty() {
        return;
    }
    out.push_str("| Argument | Description |\n|---|---|\n");
    for a in args {
        out.push_str(&format!(
            "| `{}` | {} |\n",
            arg_form(a),
            cell(&arg_details(a))
        ));
    }
    out.push('\n');
}

fn command_section(out: &mut String, cmd: &Command, depth: usize) {
    let name = full_name(cmd);
    out.push_str(&format!(
        "<a id=\"{}\"></a>\n\n{} `{name}`\n\n",
        anchor(cmd),
        "#".repeat(depth.min(6))
    ));
    let a = about(cmd);
    if !a.is_empty() {
        out.push_str(&cell(&a));
        out.push_str("\n\n");
    }
    out.push_str(&format!("```\n{}\n```\n\n", usage(cmd)));
    // The root's global options are documented once; a subcommand's own globals (`pki --state`) here.
    let root_globals: Vec<String> = Cli::command()
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.get_id().to_string())
        .collect();
    let own: Vec<&Arg> = cmd
        .get_arguments()
        .filter(|a| {
            let root_global =
                a.is_global_set() && root_globals.iter().any(|g| g == a.get_id().as_str());
            !root_global && !a.is_hide_set() && !is_builtin(a)
        })
        .collect();
    // Positionals first, then options, each in definition order.
    let mut own = own;
    own.sort_by_key(|a| !a.is_positional());
    args_table(out, &own);
    if reports_json(cmd) {
        out.push_str(
            "With `--output json` it prints its report as one JSON document on stdout \
             (diagnostics and progress stay on stderr).\n\n",
        );
    }
    let subs: Vec<&Command> = visible_subcommands(cmd).collect();
    if !subs.is_empty() {
        out.push_str("Commands:\n\n");
        for s in &subs {
            out.push_str(&format!(
                "- [`{}`](#{}): {}\n",
                full_name(s),
                anchor(s),
                cell(&s.get_about().map(|a| a.to_string()).unwrap_or_default())
            ));
        }
        out.push('\n');
        for s in subs {
            command_section(out, s, depth + 1);
        }
    }
}

/// Renders docs/cli.md.
pub fn render() -> Result<String, DocsError> {
    let cmd = command();
    let mut out = String::new();
    out.push_str(&format!(
        "<!-- {MARKER} from the command-line definitions (src/cli/args.rs) and src/exit.rs; do not edit. -->\n\
         # Command-line reference\n\n\
         kimage {} — {}\n\n\
         ```\n{}\n```\n\n",
        cmd.get_version().unwrap_or(""),
        cell(&about(&cmd)),
        usage(&cmd)
    ));
    out.push_str("## Global options\n\nAccepted by every command, before or after its name.\n\n");
    let globals: Vec<&Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !is_builtin(a))
        .collect();
    args_table(&mut out, &globals);
    let builtins: Vec<String> = cmd
        .get_arguments()
        .filter(|a| is_builtin(a))
        .map(|a| format!("`{}`", arg_form(a)))
        .collect();
    out.push_str(&format!(
        "{} print help or the version and exit 0.\n\n",
        builtins.join(", ")
    ));

    out.push_str("## Reports (`--output json`)\n\n");
    let list: Vec<String> = JSON_REPORTS
        .iter()
        .map(|p| {
            let found = p
                .split(' ')
                .try_fold(&cmd, |c, word| c.find_subcommand(word));
            match found {
                Some(c) => format!("[`kimage {p}`](#{})", anchor(c)),
                None => format!("`kimage {p}`"),
            }
        })
        .collect();
    out.push_str(&format!(
        "These commands print a report: {}. With `--output json` the report is one JSON document on \
         stdout, for scripts and CI; warnings, diagnostics and progress go to stderr in both formats. \
         Other commands accept `--output` and ignore it.\n\n",
        list.join(", ")
    ));

    out.push_str("## Commands\n\n");
    for s in visible_subcommands(&cmd) {
        out.push_str(&format!(
            "- [`{}`](#{}): {}\n",
            full_name(s),
            anchor(s),
            cell(&s.get_about().map(|a| a.to_string()).unwrap_or_default())
        ));
    }
    out.push('\n');
    for s in visible_subcommands(&cmd) {
        command_section(&mut out, s, 3);
    }

    out.push_str(
        "<a id=\"exit-statuses\"></a>\n\n## Exit statuses\n\n\
         | Status | Name | Meaning |\n|---|---|---|\n",
    );
    for e in exit_statuses() {
        out.push_str(&format!(
            "| {} | `{}` | {} |\n",
            e.code,
            e.name,
            cell(&e.meaning)
        ));
    }
    out.push_str(
        "\nA command line clap cannot parse (unknown flag, missing value) also exits 2, before anything \
         is read or written.\n",
    );
    Ok(out)
}

/// roff for the EXIT STATUS section of kimage(1).
fn exit_status_roff() -> String {
    let mut r = clap_mangen::roff::Roff::new();
    r.control("SH", ["EXIT STATUS"]);
    for e in exit_statuses() {
        r.control("TP", []);
        r.text([clap_mangen::roff::bold(e.code.to_string())]);
        r.text([clap_mangen::roff::roman(format!(
            "{}: {}",
            e.name, e.meaning
        ))]);
    }
    r.to_roff()
}

/// kimage.1 and kimage-<command>.1 for every visible (sub)command.
pub fn man_pages() -> Result<Files, DocsError> {
    fn render(cmd: &Command, extra: &str) -> Result<Vec<u8>, DocsError> {
        let mut page = format!(".\\\" {MARKER} from the command-line definitions; do not edit.\n")
            .into_bytes();
        clap_mangen::Man::new(cmd.clone())
            .render(&mut page)
            .map_err(|e| DocsError::Generate(format!("rendering man page: {e}")))?;
        page.extend(extra.as_bytes());
        Ok(page)
    }
    fn walk(cmd: &Command, files: &mut Files) -> Result<(), DocsError> {
        for s in visible_subcommands(cmd) {
            let name = format!("{}.1", s.get_display_name().unwrap_or(s.get_name()));
            files.insert(name, render(s, "")?);
            walk(s, files)?;
        }
        Ok(())
    }
    let cmd = command();
    let mut files = Files::new();
    files.insert("kimage.1".into(), render(&cmd, &exit_status_roff())?);
    walk(&cmd, &mut files)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit;

    #[test]
    fn exit_statuses_match_the_constants() {
        let got: Vec<(u8, String)> = exit_statuses()
            .into_iter()
            .map(|e| (e.code, e.name))
            .collect();
        let want = [
            (0, "SUCCESS".to_string()),
            (exit::FAILURE, "FAILURE".to_string()),
            (exit::INVALID, "INVALID".to_string()),
            (exit::STATE, "STATE".to_string()),
            (exit::VERIFY, "VERIFY".to_string()),
        ];
        // Every constant that exists must be found; new ones may follow.
        assert_eq!(&got[..want.len()], &want[..]);
        assert!(exit_statuses().iter().all(|e| !e.meaning.is_empty()));
    }

    #[test]
    fn json_reports_name_real_commands() {
        let cmd = command();
        for p in JSON_REPORTS {
            let first = p.split(' ').next().unwrap();
            assert!(
                cmd.find_subcommand(first).is_some(),
                "JSON_REPORTS lists `{p}` but there is no command `kimage {first}`"
            );
        }
    }
}
