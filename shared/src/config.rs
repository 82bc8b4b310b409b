//! Configuration read from the environment once, at cold start. A missing required variable stops the
//! function with a message that names it; tuning knobs have documented defaults.

use crate::profile::Decay;

/// A configuration problem, reported at cold start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    /// A variable has a value that cannot be used.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// A required variable.
///
/// # Errors
/// [`ConfigError::Missing`] when unset or empty.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// A positive number, or `default` when unset.
///
/// # Errors
/// [`ConfigError::Invalid`] when set to anything but a positive number.
pub fn positive_or(name: &'static str, default: f64) -> Result<f64, ConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
            _ => Err(ConfigError::Invalid {
                name,
                reason: "must be a positive number",
            }),
        },
    }
}

/// The tables, by their environment variables (`TENANTS_TABLE`, `EVENTS_TABLE`, `PROFILES_TABLE`,
/// `POPULARITY_TABLE`). A function reads only those it uses; the others stay empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tables {
    /// Tenant records, OAuth states, webhook ids, deletion jobs and tombstones.
    pub tenants: String,
    /// Raw events.
    pub events: String,
    /// Shopper profiles and aliases.
    pub profiles: String,
    /// Per-tenant product popularity.
    pub popularity: String,
}

/// Which tables a function needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// `TENANTS_TABLE`.
    pub tenants: bool,
    /// `EVENTS_TABLE`.
    pub events: bool,
    /// `PROFILES_TABLE`.
    pub profiles: bool,
    /// `POPULARITY_TABLE`.
    pub popularity: bool,
}

impl Needs {
    /// Every table (tenant deletion works on all of them).
    pub const ALL: Self = Self {
        tenants: true,
        events: true,
        profiles: true,
        popularity: true,
    };
    /// The read model: what the aggregate function writes from the events stream and the recommend
    /// function reads (tenants, profiles, popularity; not the events).
    pub const READ_MODEL: Self = Self {
        events: false,
        ..Self::ALL
    };
}

impl Tables {
    /// Reads the table names a function needs.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] naming the first missing variable.
    pub fn from_env(needs: Needs) -> Result<Self, ConfigError> {
        let get = |need: bool, name| {
            if need {
                required(name)
            } else {
                Ok(String::new())
            }
        };
        Ok(Self {
            tenants: get(needs.tenants, "TENANTS_TABLE")?,
            events: get(needs.events, "EVENTS_TABLE")?,
            profiles: get(needs.profiles, "PROFILES_TABLE")?,
            popularity: get(needs.popularity, "POPULARITY_TABLE")?,
        })
    }
}

/// The affinity half-life from `AFFINITY_HALF_LIFE_DAYS` (default 30 days).
///
/// # Errors
/// [`ConfigError::Invalid`] for a non-positive or non-numeric value.
pub fn decay_from_env() -> Result<Decay, ConfigError> {
    let days = positive_or("AFFINITY_HALF_LIFE_DAYS", 30.0)?;
    Ok(Decay {
        half_life_ms: days * 86_400_000.0,
        ..Decay::default()
    })
}

/// Raw-event retention from `EVENT_TTL_DAYS` (default 90 days), in seconds.
///
/// # Errors
/// [`ConfigError::Invalid`] for a non-positive or non-numeric value.
pub fn event_ttl_s_from_env() -> Result<i64, ConfigError> {
    Ok((positive_or("EVENT_TTL_DAYS", 90.0)? * 86_400.0) as i64)
}

/// The AWS configuration: region, credentials and endpoints from the standard sources, including
/// `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_KMS` for local emulators.
pub async fn aws() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Starts JSON logs to stdout at the level of `RUST_LOG` (default `info`), without ANSI colours and
/// without the time (Lambda stamps each line).
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .with_current_span(false)
        .without_time()
        .with_ansi(false)
        .try_init();
}
