//! `amqp://user:pass@host:port/vhost` URIs, as RabbitMQ's URI spec writes them.
//!
//! Differences from the spec, on purpose: a missing or empty path means the default vhost `/`
//! (the spec's empty vhost is never what a benchmark wants), and `amqps` is refused (the tool
//! speaks plain TCP only).

use std::fmt;

use anyhow::{anyhow, bail, Result};

/// A parsed AMQP URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpUri {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
}

impl Default for AmqpUri {
    fn default() -> Self {
        AmqpUri {
            host: "127.0.0.1".into(),
            port: 5672,
            user: "guest".into(),
            password: "guest".into(),
            vhost: "/".into(),
        }
    }
}

impl AmqpUri {
    /// Parses `amqp://[user[:pass]@]host[:port][/vhost][?query]`. User, password and vhost are
    /// percent-decoded (`%2f` is `/`); the query is ignored.
    pub fn parse(s: &str) -> Result<AmqpUri> {
        let rest = s
            .strip_prefix("amqp://")
            .ok_or_else(|| anyhow!("{s:?}: only amqp:// URIs are supported"))?;
        let rest = rest.split(['?', '#']).next().unwrap_or("");
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let mut uri = AmqpUri::default();
        let hostport = match authority.rfind('@') {
            Some(i) => {
                let userinfo = &authority[..i];
                let (user, pass) = match userinfo.find(':') {
                    Some(j) => (&userinfo[..j], Some(&userinfo[j + 1..])),
                    None => (userinfo, None),
                };
                uri.user = percent_decode(user)?;
                if let Some(pass) = pass {
                    uri.password = percent_decode(pass)?;
                }
                &authority[i + 1..]
            }
            None => authority,
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let end = v6
                .find(']')
                .ok_or_else(|| anyhow!("{s:?}: unclosed '[' in host"))?;
            let port = v6[end + 1..].strip_prefix(':');
            (&v6[..end], port)
        } else {
            match hostport.rfind(':') {
                Some(i) => (&hostport[..i], Some(&hostport[i + 1..])),
                None => (hostport, None),
            }
        };
        if !host.is_empty() {
            uri.host = host.to_string();
        }
        if let Some(port) = port.filter(|p| !p.is_empty()) {
            uri.port = port
                .parse()
                .map_err(|_| anyhow!("{s:?}: bad port {port:?}"))?;
        }
        if !path.is_empty() {
            uri.vhost = percent_decode(path)?;
        }
        if uri.vhost.is_empty() {
            uri.vhost = "/".into();
        }
        Ok(uri)
    }

    /// `host:port`, bracketing an IPv6 host.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for AmqpUri {
    /// The URI without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vhost = if self.vhost == "/" {
            "%2f"
        } else {
            &self.vhost
        };
        write!(f, "amqp://{}@{}/{}", self.user, self.address(), vhost)
    }
}

fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| anyhow!("{s:?}: truncated percent escape"))?;
            let v = u8::from_str_radix(hex, 16)
                .map_err(|_| anyhow!("{s:?}: bad percent escape %{hex}"))?;
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    match String::from_utf8(out) {
        Ok(s) => Ok(s),
        Err(_) => bail!("{s:?}: percent-decodes to invalid UTF-8"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parses_every_part() {
        let u = AmqpUri::parse("amqp://bob:s%40cret@broker.example:5673/prod%2fa").unwrap();
        assert_eq!(u.user, "bob");
        assert_eq!(u.password, "s@cret");
        assert_eq!(u.host, "broker.example");
        assert_eq!(u.port, 5673);
        assert_eq!(u.vhost, "prod/a");
    }

    #[test]
    fn uri_defaults_to_guest_on_localhost_and_slash_vhost() {
        let u = AmqpUri::parse("amqp://").unwrap();
        assert_eq!(u, AmqpUri::default());
        let u = AmqpUri::parse("amqp://h").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.vhost.as_str()),
            ("h", 5672, "/")
        );
        let u = AmqpUri::parse("amqp://h/").unwrap();
        assert_eq!(u.vhost, "/");
        let u = AmqpUri::parse("amqp://guest:guest@127.0.0.1:5672/%2F").unwrap();
        assert_eq!(u.vhost, "/");
    }

    #[test]
    fn uri_takes_ipv6_hosts_and_ignores_the_query() {
        let u = AmqpUri::parse("amqp://[::1]:5680/v?heartbeat=10").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, 5680);
        assert_eq!(u.vhost, "v");
        assert_eq!(u.address(), "[::1]:5680");
    }

    #[test]
    fn uri_rejects_other_schemes_and_bad_ports() {
        assert!(AmqpUri::parse("amqps://h").is_err());
        assert!(AmqpUri::parse("http://h").is_err());
        assert!(AmqpUri::parse("amqp://h:notaport").is_err());
        assert!(AmqpUri::parse("amqp://h/%zz").is_err());
    }

    #[test]
    fn uri_display_hides_the_password() {
        let u = AmqpUri::parse("amqp://u:secret@h:1/%2f").unwrap();
        assert_eq!(u.to_string(), "amqp://u@h:1/%2f");
    }
}
