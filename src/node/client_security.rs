//! A node's HTTPS listener and PASSWORD authentication, prepared before the node starts anything
//! else (a bad keystore or a taken HTTPS port stops it before it announces itself), then wrapped
//! around its routes and served next to the HTTP port. Production builds only: the simulation
//! refuses a configuration that asks for them.

use axum::Router;
#[cfg(not(madsim))]
use tokio::net::TcpListener;

use crate::context::NodeContext;
use crate::runtime::http_server::ServerHandle;

pub(super) struct ClientSecurity {
    #[cfg(not(madsim))]
    https: Option<(TcpListener, crate::runtime::tls::TlsAcceptor)>,
    #[cfg(not(madsim))]
    password: Option<std::sync::Arc<crate::security::password::PasswordAuthenticator>>,
}

impl ClientSecurity {
    /// Checks the settings, reads the keystore and binds the HTTPS port.
    #[cfg(not(madsim))]
    pub(super) async fn prepare(context: &NodeContext) -> Result<ClientSecurity, String> {
        use crate::config::client_security::ClientAuthentication;
        let config = &context.config;
        config.check_client_security()?;
        let https = match &config.https {
            None => None,
            Some(https) => {
                let acceptor = crate::runtime::tls::acceptor_from_pem_file(&https.keystore_path)?;
                let bind: std::net::SocketAddr = format!("{}:{}", config.bind_address, https.port)
                    .parse()
                    .map_err(|_| format!("http-server.bind-address {:?} is not an IP address", config.bind_address))?;
                let listener = crate::runtime::http_server::bind(bind)
                    .await
                    .map_err(|error| format!("http-server.https.port: cannot listen on {bind}: {error}"))?;
                Some((listener, acceptor))
            }
        };
        let password = match (config.client_authentication, &config.password_file) {
            (ClientAuthentication::Password, Some(file)) => {
                tracing::info!(node = %config.node_id, file = %file.origin, users = file.user_count(), "PASSWORD authentication for client requests");
                Some(std::sync::Arc::new(crate::security::password::PasswordAuthenticator::new(file.clone(), context.clock.clone())))
            }
            _ => None,
        };
        Ok(ClientSecurity { https, password })
    }

    #[cfg(madsim)]
    pub(super) async fn prepare(context: &NodeContext) -> Result<ClientSecurity, String> {
        let config = &context.config;
        if config.https.is_some() || config.client_authentication != crate::config::client_security::ClientAuthentication::None {
            return Err("HTTPS and PASSWORD authentication are not available in the simulation build".into());
        }
        Ok(ClientSecurity {})
    }

    /// `router` with PASSWORD authentication on its client endpoints, when configured. Goes inside
    /// internal authentication, which marks the requests that come from nodes.
    pub(super) fn layer(&self, router: Router, context: &NodeContext) -> Router {
        #[cfg(not(madsim))]
        if let Some(password) = &self.password {
            return crate::security::client::require_password(router, password.clone(), context.access.clone(), context.metrics.clone());
        }
        let _ = context;
        router
    }

    /// Serves `router` on the HTTPS port, when configured.
    pub(super) fn serve_https(self, router: Router) -> Result<Option<ServerHandle>, String> {
        #[cfg(not(madsim))]
        if let Some((listener, acceptor)) = self.https {
            let server = crate::runtime::http_server::serve_tls(listener, router, acceptor)
                .map_err(|error| format!("cannot serve HTTPS: {error}"))?;
            return Ok(Some(server));
        }
        let _ = router;
        Ok(None)
    }
}
