//! Vendors ("sources") as the handler serves them: the sources file's model with each source's
//! secrets read.
//!
//! Without `SOURCES_FILE` there is one source, `default`, with the GitHub scheme and
//! `WEBHOOK_SECRET`. With it, every `[[source]]` of the file is a source
//! ([`webhook_core::sources`] parses and checks it; every key is in `examples/sources.toml`,
//! which the README shows and a test below loads).

use std::collections::HashMap;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use webhook_core::config::{ConfigError, Secret};
use webhook_core::ids::SourceName;
use webhook_core::signature::{Keys, Scheme};
pub use webhook_core::sources::{Identity, Locator};
use webhook_core::sources::{SourceConfig, SourcesError, SourcesFile, invalid_file};

/// The source that `POST /webhook` posts to.
pub const DEFAULT_SOURCE: &str = "default";

/// A vendor as the handler serves it: its configuration and its secrets, read.
#[derive(Debug, Clone)]
pub struct Source {
    /// Everything the sources file says about it (`source.scheme`, `source.name`, … read
    /// through to it).
    pub config: SourceConfig,
    /// Secrets and public keys; the first that verifies wins.
    pub keys: Keys,
}

impl Deref for Source {
    type Target = SourceConfig;

    fn deref(&self) -> &SourceConfig {
        &self.config
    }
}

impl Source {
    /// The single-secret setup: GitHub scheme, `WEBHOOK_SECRET`.
    pub fn default_with(secret: Secret) -> Self {
        let name = SourceName::parse(DEFAULT_SOURCE).expect("`default` is a valid source name");
        Self {
            config: SourceConfig::new(name, Scheme::GITHUB).expect("the GitHub scheme has a place for delivery ids"),
            keys: Keys::secrets(&[secret]),
        }
    }

    /// A configured source with its secrets and certificates read (a certificate that has
    /// expired stops the handler at start).
    fn from_config(
        config: &SourceConfig,
        env: &dyn Fn(&str) -> Option<String>,
        read_file: &dyn Fn(&str) -> std::io::Result<String>,
    ) -> Result<Self, SourcesError> {
        Ok(Self {
            keys: config.keys(env, read_file, chrono::Utc::now().timestamp())?,
            config: config.clone(),
        })
    }

    /// The URL the vendor signed for a request whose query string is `query`: the source's
    /// `url` with it, for the schemes that sign the URL.
    pub fn signed_url(&self, query: &str) -> Option<String> {
        let url = self.endpoint.url.as_deref()?;
        Some(if query.is_empty() {
            url.to_owned()
        } else {
            format!("{url}?{query}")
        })
    }
}

/// Every configured source by name.
#[derive(Debug, Clone, Default)]
pub struct Sources(HashMap<SourceName, Arc<Source>>);

impl Sources {
    /// The source called `name`, if configured.
    pub fn get(&self, name: &str) -> Option<&Arc<Source>> {
        self.0.get(name)
    }

    /// Adds or replaces a source.
    pub fn insert(&mut self, source: Source) {
        self.0.insert(source.config.name.clone(), Arc::new(source));
    }

    /// Every source, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Source>> {
        self.0.values()
    }

    /// How many sources there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reads a sources file and every source's secrets. `env` looks up the variables named in
    /// `secret_env`.
    pub fn from_file(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let file = SourcesFile::read(path)?;
        Self::from_sources(&file, env, &|secret_file| std::fs::read_to_string(secret_file))
            .map_err(|why| invalid_file(path, &why))
    }

    /// The sources of a parsed file, with their secrets read.
    pub fn from_sources(
        file: &SourcesFile,
        env: &dyn Fn(&str) -> Option<String>,
        read_file: &dyn Fn(&str) -> std::io::Result<String>,
    ) -> Result<Self, SourcesError> {
        let mut sources = Self::default();
        for config in file.sources() {
            sources.insert(Source::from_config(config, env, read_file)?);
        }
        Ok(sources)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webhook_core::payload::BodyFormat;

    fn load(text: &str) -> Result<Sources, String> {
        let env = |name: &str| (name == "NEXT_SECRET").then(|| "next".to_owned());
        let read = |_: &str| Err(std::io::Error::new(std::io::ErrorKind::NotFound, "No such file"));
        let file = SourcesFile::parse(text).map_err(|error| error.to_string())?;
        Sources::from_sources(&file, &env, &read).map_err(|error| error.to_string())
    }

    #[test]
    fn each_source_is_served_with_its_secrets_read() {
        let sources = load(
            "[[source]]\nname = \"stripe\"\nscheme = \"stripe\"\nsecrets = [\"one\"]\nsecret_env = [\"NEXT_SECRET\"]\n\n\
             [[source]]\nname = \"shop\"\nscheme = \"shopify\"\nsecrets = [\"s\"]\nmax_body_bytes = 1000\n",
        )
        .unwrap();
        assert_eq!(sources.len(), 2);
        let stripe = sources.get("stripe").unwrap();
        let secrets: Vec<&str> = stripe.keys.secrets.iter().map(Secret::expose).collect();
        assert_eq!(secrets, ["one", "next"]);
        assert_eq!(stripe.delivery_id, Identity::At(Locator::Json("/id".into())));
        assert_eq!(sources.get("shop").unwrap().max_body_bytes, Some(1000));
        assert!(sources.get("default").is_none());
    }

    #[test]
    fn a_secret_that_cannot_be_read_names_the_source_and_the_field() {
        let error = load("[[source]]\nname = \"a\"\nscheme = \"github\"\nsecret_env = [\"UNSET\"]").unwrap_err();
        assert_eq!(
            error,
            "source \"a\": field `secret_env`: environment variable UNSET is not set"
        );
    }

    #[test]
    fn the_example_file_in_the_readme_configures_one_source_per_scheme() {
        let example = include_str!("../../examples/sources.toml");
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&format!("```toml\n{example}```")),
            "README.md must show examples/sources.toml verbatim"
        );
        let file = SourcesFile::parse(example).unwrap();
        let certificate = include_str!("../../webhook-core/tests/vectors/keys/paypal-cert.pem");
        let sources = Sources::from_sources(&file, &|_| Some("from-env".to_owned()), &|path| {
            Ok(if path.ends_with(".pem") {
                certificate
            } else {
                "from-file\n"
            }
            .to_owned())
        })
        .unwrap();
        let mut schemes: Vec<&str> = sources.0.values().map(|source| source.scheme.name()).collect();
        schemes.sort_unstable();
        schemes.dedup();
        let mut every: Vec<&str> = webhook_core::signature::FAMILIES
            .iter()
            .map(|family| family.name)
            .collect();
        every.push("hmac");
        every.sort_unstable();
        assert_eq!(schemes, every, "one source per scheme but none");
        assert_eq!(sources.get("slash").unwrap().body_format, BodyFormat::Form);
        let stripe: Vec<&str> = sources
            .get("stripe")
            .unwrap()
            .keys
            .secrets
            .iter()
            .map(Secret::expose)
            .collect();
        assert_eq!(stripe, ["from-env", "from-env"]);
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let sources = load("[[source]]\nname = \"a\"\nscheme = \"github\"\nsecrets = [\"topsecret\"]").unwrap();
        assert!(!format!("{sources:?}").contains("topsecret"));
    }
}
