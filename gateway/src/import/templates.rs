//! The watch folders' templates, loaded at start and replaced only by a SIGHUP that finds
//! them valid: an operator's half-edited template never rejects a town's files.

use super::load_template;
use crate::config::{Config, Import};
use connectors::template::Template;
use std::collections::HashMap;
use std::sync::RwLock;

/// Template name → the parsed template and its text.
#[derive(Debug, Default)]
pub struct TemplateCache {
    templates: RwLock<HashMap<String, (Template, String)>>,
}

impl TemplateCache {
    /// Loads every watch folder's template (the configuration check already read them).
    pub fn load(config: &Config) -> TemplateCache {
        let cache = TemplateCache::default();
        let _ = cache.reload(config);
        cache
    }

    /// Reads every watch folder's template again; a template that no longer loads keeps
    /// its previous version. Returns the problems, each naming the template.
    pub fn reload(&self, config: &Config) -> Vec<String> {
        let mut problems = Vec::new();
        let names: Vec<String> = config.import.watch.iter().filter_map(Import::watch_template).collect();
        for name in names {
            match load_template(config, &name) {
                Ok(loaded) => {
                    self.templates.write().unwrap_or_else(|p| p.into_inner()).insert(name, loaded);
                }
                Err(reason) => problems.push(reason),
            }
        }
        problems
    }

    /// The cached template, or the file when it was never loaded.
    pub fn get(&self, config: &Config, name: &str) -> Result<(Template, String), String> {
        if let Some(found) = self.templates.read().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Ok(found.clone());
        }
        load_template(config, name)
    }
}
