//! Where webhooks may be sent (SSRF defence): every address in the IANA special-purpose
//! registries for IPv4 and IPv6 (loopback, private, link-local, shared, documentation,
//! benchmarking, reserved, NAT64, IPv4-mapped and -compatible, 6to4, Teredo, ULA, site-local,
//! multicast, …) is refused unless `allow_private_webhook_targets`.
//!
//! The check and the connection must see the same address, or DNS rebinding slips through (a
//! name that resolves to a public address when checked and to 127.0.0.1 when the HTTP client
//! resolves it again). So the delivery client resolves names only through [`CheckedResolver`],
//! which refuses the whole answer if any address in it is refused: the client connects to
//! exactly the addresses that were checked. IP literals never reach a resolver, so
//! [`check_url`] checks them before a request is made.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use url::Url;

/// IPv4 ranges refused, as (network, prefix length): the IANA IPv4 Special-Purpose Address
/// Registry, plus multicast and the limited broadcast address.
const REFUSED_V4: &[(u32, u8)] = &[
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
    (0x0a00_0000, 8),  // 10.0.0.0/8 private
    (0x6440_0000, 10), // 100.64.0.0/10 shared address space (carrier-grade NAT)
    (0x7f00_0000, 8),  // 127.0.0.0/8 loopback
    (0xa9fe_0000, 16), // 169.254.0.0/16 link-local (cloud metadata)
    (0xac10_0000, 12), // 172.16.0.0/12 private
    (0xc000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
    (0xc000_0200, 24), // 192.0.2.0/24 documentation (TEST-NET-1)
    (0xc01f_c400, 24), // 192.31.196.0/24 AS112-v4
    (0xc034_c100, 24), // 192.52.193.0/24 AMT
    (0xc058_6300, 24), // 192.88.99.0/24 deprecated 6to4 relay anycast
    (0xc0a8_0000, 16), // 192.168.0.0/16 private
    (0xc0af_3000, 24), // 192.175.48.0/24 direct delegation AS112
    (0xc612_0000, 15), // 198.18.0.0/15 benchmarking
    (0xc633_6400, 24), // 198.51.100.0/24 documentation (TEST-NET-2)
    (0xcb00_7100, 24), // 203.0.113.0/24 documentation (TEST-NET-3)
    (0xe000_0000, 4),  // 224.0.0.0/4 multicast
    (0xf000_0000, 4),  // 240.0.0.0/4 reserved (and 255.255.255.255 broadcast)
];

/// IPv6 ranges refused, as (network, prefix length): the IANA IPv6 Special-Purpose Address
/// Registry, plus multicast and the deprecated site-local block.
const REFUSED_V6: &[(u128, u8)] = &[
    (0, 128),                                        // ::/128 unspecified
    (1, 128),                                        // ::1/128 loopback
    (0, 96),                                         // ::/96 IPv4-compatible (deprecated)
    (0xffff_0000_0000, 96),                          // ::ffff:0:0/96 IPv4-mapped
    (0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96), // 64:ff9b::/96 NAT64 well-known prefix
    (0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48), // 64:ff9b:1::/48 local-use NAT64
    (0x0100_0000_0000_0000_0000_0000_0000_0000, 64), // 100::/64 discard-only
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 23), // 2001::/23 IETF protocol assignments (Teredo, ORCHID, benchmarking…)
    (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32), // 2001:db8::/32 documentation
    (0x2002_0000_0000_0000_0000_0000_0000_0000, 16), // 2002::/16 6to4 (embeds any IPv4 address)
    (0x3fff_0000_0000_0000_0000_0000_0000_0000, 20), // 3fff::/20 documentation
    (0x5f00_0000_0000_0000_0000_0000_0000_0000, 16), // 5f00::/16 segment routing SIDs
    (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7),  // fc00::/7 unique local
    (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10), // fe80::/10 link-local
    (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10), // fec0::/10 site-local (deprecated)
    (0xff00_0000_0000_0000_0000_0000_0000_0000, 8),  // ff00::/8 multicast
];

fn in_v4(ip: Ipv4Addr, (net, len): (u32, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == net & mask
}

fn in_v6(ip: Ipv6Addr, (net, len): (u128, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == net & mask
}

/// Whether a webhook may not be sent to `ip` (unless private targets are allowed).
pub fn is_refused(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => REFUSED_V4.iter().any(|range| in_v4(v4, *range)),
        IpAddr::V6(v6) => REFUSED_V6.iter().any(|range| in_v6(v6, *range)),
    }
}

/// Why a target URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("not a URL")]
    NotUrl,
    #[error("must be https")]
    NotHttps,
    #[error("must not carry credentials")]
    Credentials,
    #[error("has no host")]
    NoHost,
    #[error("does not resolve")]
    DoesNotResolve,
    #[error(
        "resolves to a private or otherwise special-purpose address, which is refused (allow_private_webhook_targets)"
    )]
    Private,
}

/// Parses and checks a target without resolving it: scheme, credentials, and an IP literal
/// host's address (names are checked by [`CheckedResolver`] when connecting, or [`resolve_checked`]).
pub fn check_url(url: &str, allow_private: bool) -> Result<Url, TargetError> {
    let parsed = Url::parse(url).map_err(|_| TargetError::NotUrl)?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(TargetError::NotHttps),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(TargetError::Credentials);
    }
    let refused = match parsed.host() {
        None => return Err(TargetError::NoHost),
        Some(url::Host::Ipv4(v4)) => is_refused(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => is_refused(IpAddr::V6(v6)),
        Some(url::Host::Domain(_)) => false,
    };
    if refused && !allow_private {
        return Err(TargetError::Private);
    }
    Ok(parsed)
}

/// Resolves `host` and refuses the answer if any address in it is refused.
pub async fn resolve_checked(host: &str, port: u16, allow_private: bool) -> Result<Vec<SocketAddr>, TargetError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|_| TargetError::DoesNotResolve)?
        .collect();
    if addrs.is_empty() {
        return Err(TargetError::DoesNotResolve);
    }
    if !allow_private && addrs.iter().any(|a| is_refused(a.ip())) {
        return Err(TargetError::Private);
    }
    Ok(addrs)
}

/// The delivery client's only DNS resolver: what it returns is what was checked.
#[derive(Debug, Clone, Copy)]
pub struct CheckedResolver {
    /// Tests and the demo deliver to loopback.
    pub allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            // The port is the connector's to set; resolution only needs the host.
            let addrs = resolve_checked(name.as_str(), 0, allow_private).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The client that delivers webhooks: no redirects, timeouts, and names resolved only by
/// [`CheckedResolver`].
pub fn client(timeout: std::time::Duration, allow_private: bool) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(5).min(timeout))
        .timeout(timeout)
        .user_agent(concat!("latch/", env!("CARGO_PKG_VERSION"), " (webhooks)"))
        .dns_resolver(std::sync::Arc::new(CheckedResolver { allow_private }))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_purpose_addresses_are_refused_one_by_one() {
        let refused = [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.255.255",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.9",
            "192.0.0.170",
            "192.0.2.1",
            "192.31.196.1",
            "192.52.193.1",
            "192.88.99.1",
            "192.168.1.1",
            "192.175.48.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:2::1",
            "2001:10::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "3fff::1",
            "5f00::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "feff::1",
            "ff02::1",
        ];
        for ip in refused {
            assert!(is_refused(ip.parse().unwrap()), "{ip} must be refused");
        }
        let allowed = [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "2001:200::1",
            "2003::1",
        ];
        for ip in allowed {
            assert!(!is_refused(ip.parse().unwrap()), "{ip} must be allowed");
        }
    }

    #[test]
    fn urls_are_checked_without_resolving() {
        assert_eq!(check_url("http://example.com/", false), Err(TargetError::NotHttps));
        assert_eq!(check_url("https://u:p@example.com/", false), Err(TargetError::Credentials));
        assert_eq!(check_url("https://127.0.0.1/", false), Err(TargetError::Private));
        assert_eq!(check_url("https://[::ffff:10.0.0.1]/", false), Err(TargetError::Private));
        assert_eq!(check_url("https://[64:ff9b::a00:1]/", false), Err(TargetError::Private));
        assert!(check_url("https://8.8.8.8/hook", false).is_ok());
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        assert!(check_url("http://127.0.0.1:9/", true).is_ok());
    }
}
