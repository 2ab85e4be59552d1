//! `host new` and `host sdk export`: write a plugin project, or the SDK
//! alone (the work is in `scaffold`).

use crate::config::NewConfig;

pub fn new(config: NewConfig) -> anyhow::Result<()> {
    crate::scaffold::new_project(config.language, &config.name, &config.dir)?;
    print!("{}", crate::scaffold::next_steps(config.language, &config.name, &config.dir));
    Ok(())
}

pub fn export_sdk(dir: &std::path::Path) -> anyhow::Result<()> {
    let count = crate::scaffold::export_sdk(dir)?;
    println!("wrote the Chard SDK ({count} files: wit/, sdk/, tools/) to {}", dir.display());
    Ok(())
}
