//! Routing: (method, path) → the route that answers it.
//!
//! Exact paths win over prefix routes; among prefix routes the longest
//! prefix wins. `HEAD` is answered by the `GET` route of the same path
//! (without a body) unless a `HEAD` route exists. A path that exists with
//! other methods is a 405 carrying the `Allow` list; anything else is a 404.

use std::collections::HashMap;

use crate::config::RoutePath;
use crate::http::Method;

/// The result of a lookup.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a, R> {
    /// The route; `head_only` when a HEAD request is answered by a GET
    /// route.
    Found {
        route: &'a R,
        head_only: bool,
    },
    MethodNotAllowed {
        allow: &'a str,
    },
    NotFound,
}

/// Methods of one path, each with its route's position in `Router::routes`.
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

    /// The position of the route for `method`, or the `Allow` list.
    fn find(&self, method: Method) -> Result<(usize, bool), &str> {
        let exact = self.by_method.iter().find(|(m, _)| *m == method);
        match exact {
            Some((_, route)) => Ok((*route, method == Method::Head)),
            None if method == Method::Head => match self.by_method.iter().find(|(m, _)| *m == Method::Get) {
                Some((_, route)) => Ok((*route, true)),
                None => Err(&self.allow),
            },
            None => Err(&self.allow),
        }
    }
}

/// Routes of type `R` by method and path. Immutable once built: a new
/// configuration builds a new router.
#[derive(Debug)]
pub struct Router<R> {
    routes: Vec<R>,
    exact: HashMap<Vec<u8>, PathRoutes>,
    /// Longest prefix first.
    prefixes: Vec<(Vec<u8>, PathRoutes)>,
}

impl<R> Router<R> {
    /// Builds the router. Duplicates were refused by config validation.
    pub fn build(entries: impl IntoIterator<Item = (Method, RoutePath, R)>) -> Router<R> {
        let mut router = Router {
            routes: Vec::new(),
            exact: HashMap::new(),
            prefixes: Vec::new(),
        };
        for (method, path, route) in entries {
            let position = router.routes.len();
            router.routes.push(route);
            let methods = match path {
                RoutePath::Exact(path) => router.exact.entry(path.into_bytes()).or_default(),
                RoutePath::Prefix(prefix) => {
                    let bytes = prefix.into_bytes();
                    let i = match router.prefixes.iter().position(|(p, _)| *p == bytes) {
                        Some(i) => i,
                        None => {
                            router.prefixes.push((bytes, PathRoutes::default()));
                            router.prefixes.len() - 1
                        }
                    };
                    &mut router.prefixes[i].1
                }
            };
            methods.add(method, position);
        }
        router
            .prefixes
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        router
    }

    pub fn lookup(&self, method: Method, path: &[u8]) -> Lookup<'_, R> {
        let methods = self.exact.get(path).or_else(|| {
            self.prefixes
                .iter()
                .find(|(prefix, _)| prefix_matches(prefix, path))
                .map(|(_, methods)| methods)
        });
        match methods.map(|m| m.find(method)) {
            Some(Ok((position, head_only))) => Lookup::Found {
                route: &self.routes[position],
                head_only,
            },
            Some(Err(allow)) => Lookup::MethodNotAllowed { allow },
            None => Lookup::NotFound,
        }
    }

    /// Every route, in configuration order.
    pub fn routes(&self) -> &[R] {
        &self.routes
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

    /// A router whose routes are their own position.
    fn router(routes: &[(Method, &str)]) -> Router<usize> {
        Router::build(routes.iter().enumerate().map(|(i, (method, path))| {
            let path = match path.strip_suffix("/*") {
                Some(p) => RoutePath::Prefix(p.to_string()),
                None => RoutePath::Exact(path.to_string()),
            };
            (*method, path, i)
        }))
    }

    fn found(route: &usize, head_only: bool) -> Lookup<'_, usize> {
        Lookup::Found { route, head_only }
    }

    #[test]
    fn exact_prefix_head_and_405() {
        let table = router(&[
            (Method::Get, "/hello"),
            (Method::Post, "/hello"),
            (Method::Get, "/static/*"),
            (Method::Get, "/static/deep/*"),
            (Method::Put, "/static/exact"),
        ]);
        assert_eq!(table.lookup(Method::Get, b"/hello"), found(&0, false));
        assert_eq!(table.lookup(Method::Post, b"/hello"), found(&1, false));
        assert_eq!(table.lookup(Method::Head, b"/hello"), found(&0, true));
        assert_eq!(
            table.lookup(Method::Delete, b"/hello"),
            Lookup::MethodNotAllowed {
                allow: "GET, HEAD, POST"
            }
        );
        assert_eq!(table.lookup(Method::Get, b"/static"), found(&2, false));
        assert_eq!(table.lookup(Method::Get, b"/static/a/b"), found(&2, false));
        assert_eq!(table.lookup(Method::Get, b"/static/deep/x"), found(&3, false));
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
        assert_eq!(table.routes(), &[0, 1, 2, 3, 4]);
    }

    #[test]
    fn root_prefix_matches_everything() {
        let table = router(&[(Method::Get, "/*")]);
        assert_eq!(table.lookup(Method::Get, b"/"), found(&0, false));
        assert_eq!(table.lookup(Method::Get, b"/any/thing"), found(&0, false));
    }
}
