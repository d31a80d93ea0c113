//! Routing: (method, path) → the index of the route that answers it.
//!
//! Exact paths win over prefix routes; among prefix routes the longest
//! prefix wins. `HEAD` is answered by the `GET` route of the same path
//! (without a body) unless a `HEAD` route exists. A path that exists with
//! other methods is a 405 carrying the `Allow` list; anything else is a 404.

use std::collections::HashMap;

use crate::config::{RoutePath, RouteSpec};
use crate::http::Method;

/// The result of a lookup.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The route's index in the config; `head_only` when a HEAD request is
    /// answered by a GET route.
    Found {
        route: usize,
        head_only: bool,
    },
    MethodNotAllowed {
        allow: &'a str,
    },
    NotFound,
}

/// Methods of one path, each with its route index.
#[derive(Debug, Default)]
struct PathRoutes {
    by_method: Vec<(Method, usize)>,
    /// The `Allow` header value for a 405, built once.
    allow: String,
}

impl PathRoutes {
    fn add(&mut self, method: Method, route: usize) {
        self.by_method.push((method, route));
        let mut methods: Vec<Method> = self.by_method.iter().map(|(m, _)| *m).collect();
        if methods.contains(&Method::Get) && !methods.contains(&Method::Head) {
            methods.push(Method::Head);
        }
        methods.sort();
        self.allow = methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
    }

    fn find(&self, method: Method) -> Lookup<'_> {
        let exact = self.by_method.iter().find(|(m, _)| *m == method);
        match exact {
            Some((_, route)) => Lookup::Found {
                route: *route,
                head_only: method == Method::Head,
            },
            None if method == Method::Head => match self.by_method.iter().find(|(m, _)| *m == Method::Get) {
                Some((_, route)) => Lookup::Found {
                    route: *route,
                    head_only: true,
                },
                None => Lookup::MethodNotAllowed { allow: &self.allow },
            },
            None => Lookup::MethodNotAllowed { allow: &self.allow },
        }
    }
}

/// Read-only after start-up; each shard reads it without locks.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: HashMap<Vec<u8>, PathRoutes>,
    /// Longest prefix first.
    prefixes: Vec<(Vec<u8>, PathRoutes)>,
}

impl RouteTable {
    /// Builds the table. Duplicates were refused by config validation.
    pub fn build(routes: &[RouteSpec]) -> RouteTable {
        let mut table = RouteTable::default();
        for (index, route) in routes.iter().enumerate() {
            match &route.path {
                RoutePath::Exact(path) => {
                    table
                        .exact
                        .entry(path.as_bytes().to_vec())
                        .or_default()
                        .add(route.method, index);
                }
                RoutePath::Prefix(prefix) => {
                    let bytes = prefix.as_bytes();
                    match table.prefixes.iter_mut().find(|(p, _)| p == bytes) {
                        Some((_, routes)) => routes.add(route.method, index),
                        None => {
                            let mut routes = PathRoutes::default();
                            routes.add(route.method, index);
                            table.prefixes.push((bytes.to_vec(), routes));
                        }
                    }
                }
            }
        }
        table
            .prefixes
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        table
    }

    pub fn lookup(&self, method: Method, path: &[u8]) -> Lookup<'_> {
        if let Some(routes) = self.exact.get(path) {
            return routes.find(method);
        }
        for (prefix, routes) in &self.prefixes {
            if prefix_matches(prefix, path) {
                return routes.find(method);
            }
        }
        Lookup::NotFound
    }
}

/// `/static/*` (stored as `/static`) matches `/static` and `/static/...`,
/// not `/staticfoo`; `/*` (stored as ``) matches every path.
fn prefix_matches(prefix: &[u8], path: &[u8]) -> bool {
    path.starts_with(prefix) && (path.len() == prefix.len() || path[prefix.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HandlerSpec, Location, StaticSpec};

    fn route(method: Method, path: &str) -> RouteSpec {
        let path = match path.strip_suffix("/*") {
            Some(p) => RoutePath::Prefix(p.to_string()),
            None => RoutePath::Exact(path.to_string()),
        };
        RouteSpec {
            index: 0,
            name: format!("{method} {path}"),
            method,
            path,
            handler: HandlerSpec::Static(StaticSpec {
                status: 200,
                content_type: String::new(),
                body: String::new(),
            }),
            max_body_bytes: 0,
            at: Location::default(),
        }
    }

    #[test]
    fn exact_prefix_head_and_405() {
        let table = RouteTable::build(&[
            route(Method::Get, "/hello"),
            route(Method::Post, "/hello"),
            route(Method::Get, "/static/*"),
            route(Method::Get, "/static/deep/*"),
            route(Method::Put, "/static/exact"),
        ]);
        assert_eq!(
            table.lookup(Method::Get, b"/hello"),
            Lookup::Found {
                route: 0,
                head_only: false
            }
        );
        assert_eq!(
            table.lookup(Method::Post, b"/hello"),
            Lookup::Found {
                route: 1,
                head_only: false
            }
        );
        assert_eq!(
            table.lookup(Method::Head, b"/hello"),
            Lookup::Found {
                route: 0,
                head_only: true
            }
        );
        assert_eq!(
            table.lookup(Method::Delete, b"/hello"),
            Lookup::MethodNotAllowed {
                allow: "GET, HEAD, POST"
            }
        );
        assert_eq!(
            table.lookup(Method::Get, b"/static"),
            Lookup::Found {
                route: 2,
                head_only: false
            }
        );
        assert_eq!(
            table.lookup(Method::Get, b"/static/a/b"),
            Lookup::Found {
                route: 2,
                head_only: false
            }
        );
        assert_eq!(
            table.lookup(Method::Get, b"/static/deep/x"),
            Lookup::Found {
                route: 3,
                head_only: false
            }
        );
        assert_eq!(table.lookup(Method::Get, b"/staticfoo"), Lookup::NotFound);
        assert_eq!(
            table.lookup(Method::Get, b"/static/exact"),
            Lookup::MethodNotAllowed { allow: "PUT" }
        );
        assert_eq!(table.lookup(Method::Get, b"/nope"), Lookup::NotFound);
        assert_eq!(
            table.lookup(Method::Other, b"/hello"),
            Lookup::MethodNotAllowed {
                allow: "GET, HEAD, POST"
            }
        );
    }

    #[test]
    fn root_prefix_matches_everything() {
        let table = RouteTable::build(&[route(Method::Get, "/*")]);
        assert_eq!(
            table.lookup(Method::Get, b"/"),
            Lookup::Found {
                route: 0,
                head_only: false
            }
        );
        assert_eq!(
            table.lookup(Method::Get, b"/any/thing"),
            Lookup::Found {
                route: 0,
                head_only: false
            }
        );
    }
}
