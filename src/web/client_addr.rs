//! The client's address, behind trusted reverse proxies or not: the one place that reads
//! `X-Forwarded-For` and `Forwarded` (RFC 7239). Every per-IP limit (sign-in throttle, event
//! ingestion, live-stream admission) and the request log use [`client_ip`] / [`ClientAddr`].
//!
//! The headers are believed only when the TCP peer is one of `IHF_TRUSTED_PROXIES`; then the
//! chain is walked from the right (the hop nearest to us, written by our proxy) to the left,
//! skipping hops that are trusted proxies themselves; the first untrusted hop is the client.
//! Anything a client writes to the left of that is never read, so it cannot pick its own
//! address. An entry that is not an address (`unknown`, an obfuscated `_name`, garbage) stops
//! the walk: the client is then the nearest trusted hop, which owns the budget.

use std::fmt;
use std::future::{Ready, ready};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use actix_web::dev::Payload;
use actix_web::http::header::HeaderMap;
use actix_web::{FromRequest, HttpRequest, web};

use crate::AppState;

/// One network: an address and the number of leading bits that must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask32(u32::from(net), self.prefix) == mask32(u32::from(ip), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask128(u128::from(net), self.prefix) == mask128(u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }
}

fn mask32(bits: u32, prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { bits & (u32::MAX << (32 - u32::from(prefix))) }
}

fn mask128(bits: u128, prefix: u8) -> u128 {
    if prefix == 0 { 0 } else { bits & (u128::MAX << (128 - u32::from(prefix))) }
}

impl FromStr for Cidr {
    type Err = String;

    /// `10.0.0.0/8`, `2001:db8::/32`, or a single address (`127.0.0.1`, `::1`).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let network: IpAddr =
            addr.parse().map_err(|_| format!("{s:?} is not an IP address or a CIDR network (e.g. 10.0.0.0/8)"))?;
        let network = network.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The reverse proxies whose forwarding headers are believed (`IHF_TRUSTED_PROXIES`); empty
/// trusts nobody, and then the TCP peer is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let chain = forwarded_chain(headers);
        let mut client = peer;
        for hop in chain.iter().rev() {
            let Some(ip) = hop else { break };
            client = *ip;
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// Comma-separated networks; the empty string is no proxy.
    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(str::parse::<Cidr>)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// The hops a request passed, nearest last; `None` for an entry that is not an address.
/// `X-Forwarded-For` when present (what nginx, HAProxy, Caddy, Traefik and cloud balancers
/// append), `Forwarded`'s `for=` otherwise: a proxy that writes only `Forwarded` must drop a
/// client's `X-Forwarded-For`.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let xff: Vec<Option<IpAddr>> = headers
        .get_all("x-forwarded-for")
        .flat_map(|value| match value.to_str() {
            Ok(text) => text.split(',').map(parse_node).collect::<Vec<_>>(),
            Err(_) => vec![None],
        })
        .collect();
    if !xff.is_empty() {
        return xff;
    }
    headers
        .get_all("forwarded")
        .flat_map(|value| match value.to_str() {
            Ok(text) => text.split(',').filter_map(forwarded_for).collect::<Vec<_>>(),
            Err(_) => vec![None],
        })
        .collect()
}

/// The `for=` of one `Forwarded` element (`for=192.0.2.60;proto=http`); `None` when the element
/// has no `for` (it names no hop).
fn forwarded_for(element: &str) -> Option<Option<IpAddr>> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then(|| parse_node(value))
    })
}

/// An address as proxies write it: `192.0.2.60`, `192.0.2.60:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, optionally in double quotes.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    text.strip_prefix('[')?.strip_suffix(']')?.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// The client address of `req` (see the module): the peer, or what trusted proxies say.
/// `None` only when the connection has no peer address.
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    Some(match req.app_data::<web::Data<AppState>>() {
        Some(state) if !state.config.trusted_proxies.is_empty() => {
            state.config.trusted_proxies.client(peer, req.headers())
        }
        _ => peer.to_canonical(),
    })
}

/// Extractor: the client's address ([`client_ip`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// The address as a rate-limit key (empty when unknown).
    pub fn key(&self) -> String {
        self.0.map(|ip| ip.to_string()).unwrap_or_default()
    }
}

impl FromRequest for ClientAddr {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self(client_ip(req))))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_match() {
        let list: TrustedProxies = "10.0.0.0/8, 192.168.1.7 ,2001:db8::/32,::1".parse().unwrap();
        assert_eq!(list.to_string(), "10.0.0.0/8,192.168.1.7/32,2001:db8::/32,::1/128");
        assert!(list.trusts(ip("10.255.0.1")) && !list.trusts(ip("11.0.0.1")));
        assert!(list.trusts(ip("192.168.1.7")) && !list.trusts(ip("192.168.1.8")));
        assert!(list.trusts(ip("2001:db8:ffff::1")) && !list.trusts(ip("2001:db9::1")));
        assert!(list.trusts(ip("::ffff:10.1.2.3")), "IPv4-mapped IPv6 is IPv4");
        assert!(list.trusts(ip("::1")));
        assert!("0.0.0.0/0".parse::<TrustedProxies>().unwrap().trusts(ip("8.8.8.8")));
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0/8", "::/129", "1.2.3.4/x"] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let list: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let spoof = headers(&[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")]);
        assert_eq!(list.client(ip("203.0.113.9"), &spoof), ip("203.0.113.9"));
        assert_eq!(TrustedProxies::default().client(ip("10.0.0.1"), &spoof), ip("10.0.0.1"));
    }

    #[test]
    fn the_chain_is_walked_from_the_right_skipping_trusted_hops() {
        let list: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let peer = ip("10.0.0.1");
        // The client wrote 6.6.6.6 itself; our proxies appended 198.51.100.7 and 10.0.0.2.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7"), ("x-forwarded-for", "10.0.0.2")]);
        assert_eq!(list.client(peer, &h), ip("198.51.100.7"));
        let h = headers(&[("forwarded", r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, For=10.1.1.1"#)]);
        assert_eq!(list.client(peer, &h), ip("2001:db8:cafe::17"));
        assert_eq!(list.client(peer, &headers(&[("x-forwarded-for", "198.51.100.7:5555")])), ip("198.51.100.7"));
        // All hops trusted: the leftmost one.
        assert_eq!(list.client(peer, &headers(&[("x-forwarded-for", "10.9.9.9, 10.0.0.3")])), ip("10.9.9.9"));
        // No header: the proxy itself.
        assert_eq!(list.client(peer, &HeaderMap::new()), peer);
    }

    #[test]
    fn malformed_entries_stop_at_the_nearest_trusted_hop() {
        let list: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let peer = ip("10.0.0.1");
        for value in ["garbage", "1.2.3.4, unknown", "999.1.1.1", "", ",,,", "[::1"] {
            assert_eq!(list.client(peer, &headers(&[("x-forwarded-for", value)])), peer, "{value:?}");
        }
        assert_eq!(list.client(peer, &headers(&[("x-forwarded-for", "5.5.5.5, nope, 10.0.0.4")])), ip("10.0.0.4"));
        for value in ["for=unknown", "for=_hidden", "for=\"", "for", ";;;", "by=10.0.0.1;for=\"[zz]\""] {
            assert_eq!(list.client(peer, &headers(&[("forwarded", value)])), peer, "{value:?}");
        }
    }
}
