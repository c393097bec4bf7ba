//! `kimage init`: a starting profile from one of the shipped templates.

use super::*;

pub(super) fn cmd_init(cli: &Cli, args: &InitArgs) -> Result<(), Error> {
    if args.list {
        for (name, text) in TEMPLATES {
            println!("{name:<26} {}", first_sentence(text));
        }
        return Ok(());
    }
    let Some((_, text)) = TEMPLATES.iter().find(|(n, _)| *n == args.template) else {
        let names: Vec<&str> = TEMPLATES.iter().map(|(n, _)| *n).collect();
        let hint = crate::profile::suggest(&args.template, names.iter().copied())
            .map(|s| format!("did you mean `{s}`? "))
            .unwrap_or_default();
        return Err(Error::Usage(format!(
            "unknown template `{}`; {hint}templates: {}",
            args.template,
            names.join(", ")
        )));
    };
    let path = args.path.clone().unwrap_or_else(|| cli.profile.clone());
    if path.exists() && !args.force {
        return Err(Error::Usage(format!(
            "{} exists; pass --force to overwrite it, or give another path",
            path.display()
        )));
    }
    crate::output::write_atomic(&path, text.as_bytes(), 0o644)?;
    eprintln!(
        "wrote {} from template `{}`; next: kimage validate --profile {}",
        path.display(),
        args.template,
        path.display()
    );
    Ok(())
}

/// The first sentence of a template's opening comment (which may run over several lines).
fn first_sentence(text: &str) -> String {
    let comment: Vec<&str> = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim())
        .collect();
    let joined = comment.join(" ");
    match joined.find(". ") {
        Some(i) => joined[..=i].to_string(),
        None => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_descriptions_end_with_their_sentence() {
        // Regression: `init --list` printed each template's first comment line, cut mid-sentence.
        for (name, text) in TEMPLATES {
            let s = first_sentence(text);
            assert!(s.ends_with('.'), "{name}: {s}");
        }
        assert_eq!(
            first_sentence("# One two\n# three. Four.\nkind: Cluster\n"),
            "One two three."
        );
    }
}
