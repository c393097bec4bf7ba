//! `kimage init`: a starting profile from one of the shipped templates.

use super::*;

pub(super) fn cmd_init(cli: &Cli, args: &InitArgs) -> Result<(), Error> {
    if args.list {
        for (name, text) in TEMPLATES {
            let about = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches('#')
                .trim();
            println!("{name:<26} {about}");
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
