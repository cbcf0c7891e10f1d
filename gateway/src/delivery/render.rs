//! Imported messages are queued as recipes (see `import::recipe`); delivery renders each
//! one just before sending, in the citizen's language, from the template stored with it.

use crate::import::recipe::Recipe as ImportRecipe;
use crate::queue::{Queue, Recipe};
use connectors::domain::TestRecipient;
use connectors::template::{Language, Template};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Stored templates, parsed once, by the SHA-256 of their text.
#[derive(Default)]
pub struct Templates {
    parsed: Mutex<HashMap<[u8; 32], Arc<Template>>>,
}

impl Templates {
    /// The IO body of an imported message in `language` (Italian when unknown or not in
    /// the template).
    pub async fn render(
        &self,
        queue: &Queue,
        recipe: &Recipe,
        language: Option<Language>,
        test: TestRecipient,
    ) -> Result<Vec<u8>, String> {
        let template = self.template(queue, recipe.template).await?;
        let message =
            ImportRecipe::from_bytes(&recipe.data)?.render(&template, language.unwrap_or(Language::It), test)?;
        Ok(message.to_io_body())
    }

    async fn template(&self, queue: &Queue, digest: [u8; 32]) -> Result<Arc<Template>, String> {
        if let Some(template) = self.lock().get(&digest) {
            return Ok(Arc::clone(template));
        }
        let stored = queue.template(digest).await.map_err(|e| e.to_string())?;
        let (name, text) = stored.ok_or("the message's template is missing from the database")?;
        let template = Arc::new(Template::parse(&name, &text).map_err(|e| e.to_string())?);
        self.lock().insert(digest, Arc::clone(&template));
        Ok(template)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<Template>>> {
        self.parsed.lock().unwrap_or_else(|p| p.into_inner())
    }
}
