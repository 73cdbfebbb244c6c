//! Who a REST request speaks for, for the access rules (`security::access`).
//!
//! A client names its user in `X-Presto-User` / `X-Trino-User` (with password authentication
//! configured, the node has already checked that this is the authenticated principal). A request
//! a node proxies keeps the client's headers and is marked by the hop chain, so on the next node
//! it still speaks for the client — or for nobody, when the client named no user. Only a node's
//! own request (internally authenticated and not proxied) speaks for the cluster itself.

use axum::http::{Extensions, HeaderMap};

use crate::security::access::{AccessControl, QueryAccess};
use crate::security::internal::InternalCaller;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requester {
    /// Another node of the cluster, on its own behalf.
    Node,
    User(String),
    /// No user named: may see and kill no one's queries.
    Anonymous,
}

impl Requester {
    pub fn of(headers: &HeaderMap, extensions: &Extensions) -> Requester {
        let proxied = super::proxy::hops(headers) > 0;
        if extensions.get::<InternalCaller>().is_some() && !proxied {
            return Requester::Node;
        }
        let user = ["x-presto-user", "x-trino-user"]
            .iter()
            .find_map(|name| headers.get(*name).and_then(|value| value.to_str().ok()).map(str::trim).filter(|user| !user.is_empty()));
        match user {
            Some(user) => Requester::User(user.to_string()),
            None => Requester::Anonymous,
        }
    }

    /// May this requester see (or kill) a query `owner` runs?
    pub fn may(&self, access: &AccessControl, what: QueryAccess, owner: &str) -> bool {
        match self {
            Requester::Node => true,
            Requester::User(user) => access.can_access_query(user, what, owner),
            Requester::Anonymous => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requester(pairs: &[(&'static str, &str)], internal: bool) -> Requester {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().unwrap());
        }
        let mut extensions = Extensions::new();
        if internal {
            extensions.insert(InternalCaller("coordinator-1".into()));
        }
        Requester::of(&headers, &extensions)
    }

    #[test]
    fn a_proxied_request_speaks_for_its_client_not_for_the_proxy() {
        assert_eq!(requester(&[], true), Requester::Node);
        assert_eq!(requester(&[("x-fireball-proxied-by", "coordinator-1")], true), Requester::Anonymous);
        assert_eq!(requester(&[("x-fireball-proxied-by", "coordinator-1"), ("x-trino-user", "bob")], true), Requester::User("bob".into()));
        assert_eq!(requester(&[("x-presto-user", " alice ")], false), Requester::User("alice".into()));
        assert_eq!(requester(&[], false), Requester::Anonymous, "no secret, no user: nobody");
        let access = AccessControl::default();
        assert!(!Requester::Anonymous.may(&access, QueryAccess::View, "alice"));
        assert!(Requester::Node.may(&access, QueryAccess::Kill, "alice"));
    }
}
