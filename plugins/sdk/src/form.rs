//! Connection forms and record schemas.
//!
//! Forms and record schemas are JSON Schemas generated with `schemars` from Rust types,
//! so that what a connector declares and what it reads cannot drift apart.
//!
//! Every Infor connector's form embeds [`IonApiCredentials`] under the property
//! [`CREDENTIALS_PROPERTY`]: the fields users know from the Infor Data Hub "Connect" tab,
//! filled from an `.ionapi` file. The host takes that block (and every field marked
//! `"x-secret": true`) out of the connection before a connector sees it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The form property that holds the [`IonApiCredentials`] block.
pub const CREDENTIALS_PROPERTY: &str = "credentials";

/// The schema keyword that marks a secret field. Secret fields are also `writeOnly`.
pub const SECRET_KEYWORD: &str = "x-secret";

/// How the client id and secret are sent to the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// As form fields `client_id` and `client_secret` (what Infor's samples do).
    #[default]
    Form,
    /// As HTTP Basic authentication.
    Basic,
}

/// The ION API Gateway credentials of a connection, as the Infor Data Hub "Connect" tab
/// shows them. The values come from an `.ionapi` file: Service URL = `iu/ti`,
/// Token URL = `pu + ot`, Username = `saak`, Password = `sask`, Client ID = `ci`,
/// Client Secret = `cs`.
///
/// This type describes the form; connectors never receive its values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "ION API credentials",
    description = "From the .ionapi file of an authorized backend-service app (Infor OS > API Gateway > Authorized Apps > Download Credentials, with a service account)."
)]
#[serde(deny_unknown_fields)]
pub struct IonApiCredentials {
    /// The tenant's ION API base: `iu` + "/" + `ti`.
    #[schemars(
        title = "Service URL",
        example = "https://mingle-ionapi.inforcloudsuite.com/ACME_PRD",
        extend("format" = "uri")
    )]
    pub service_url: String,

    /// The OAuth 2.0 token endpoint: `pu` + `ot`.
    #[schemars(
        title = "Token URL",
        example = "https://mingle-sso.inforcloudsuite.com:443/ACME_PRD/as/token.oauth2",
        extend("format" = "uri")
    )]
    pub token_url: String,

    /// The service account's access key (`saak`).
    #[schemars(title = "Username")]
    pub username: String,

    /// The service account's secret key (`sask`).
    #[schemars(title = "Password", extend("x-secret" = true, "writeOnly" = true))]
    pub password: String,

    /// The OAuth client id (`ci`), `TENANT~...`.
    #[schemars(title = "Client ID")]
    pub client_id: String,

    /// The OAuth client secret (`cs`).
    #[schemars(title = "Client Secret", extend("x-secret" = true, "writeOnly" = true))]
    pub client_secret: String,

    /// How the client id and secret reach the token endpoint.
    #[serde(default)]
    #[schemars(title = "Client authentication")]
    pub client_auth: ClientAuth,
}

impl std::fmt::Debug for IonApiCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IonApiCredentials")
            .field("service_url", &self.service_url)
            .field("token_url", &self.token_url)
            .field("username", &self.username)
            .field("password", &"********")
            .field("client_id", &self.client_id)
            .field("client_secret", &"********")
            .field("client_auth", &self.client_auth)
            .finish()
    }
}

/// The JSON Schema of a connection form type.
pub fn form_schema<T: JsonSchema>() -> Value {
    schemars::schema_for!(T).to_value()
}

/// The JSON Schema of a record type.
pub fn record_schema<T: JsonSchema>() -> Value {
    schemars::schema_for!(T).to_value()
}

/// One property met by [`walk_properties`].
#[derive(Debug, Clone, Copy)]
pub struct Property<'a> {
    /// Dotted path from the top, e.g. `credentials.password`.
    pub path: &'a str,
    /// The property's own name.
    pub name: &'a str,
    /// The property's schema as written.
    pub schema: &'a Value,
    /// The same with a local `$ref` followed.
    pub resolved: &'a Value,
}

impl Property<'_> {
    /// Whether the property or its referenced schema carries `keyword: true`.
    pub fn flag(&self, keyword: &str) -> bool {
        [self.schema, self.resolved]
            .iter()
            .any(|s| s.get(keyword).and_then(Value::as_bool) == Some(true))
    }
}

/// Calls `visit` for every property of `root` and of the objects nested in it (through
/// local `$ref`s), depth-first, at most 8 levels deep.
pub fn walk_properties(root: &Value, mut visit: impl FnMut(Property<'_>)) {
    walk(root, root, "", &mut visit, 0);
}

fn walk(
    root: &Value,
    schema: &Value,
    prefix: &str,
    visit: &mut impl FnMut(Property<'_>),
    depth: u8,
) {
    if depth > 8 {
        return;
    }
    let schema = resolve(root, schema);
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, prop) in props {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let resolved = resolve(root, prop);
        visit(Property {
            path: &path,
            name,
            schema: prop,
            resolved,
        });
        walk(root, resolved, &path, visit, depth + 1);
    }
}

/// The names of the properties of `schema` (top level and nested objects, dotted) that
/// are marked secret.
pub fn secret_fields(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_properties(schema, |p| {
        if p.flag(SECRET_KEYWORD) {
            out.push(p.path.to_string());
        }
    });
    out
}

/// Whether a property schema is marked secret.
pub fn is_secret(prop: &Value) -> bool {
    prop.get(SECRET_KEYWORD).and_then(Value::as_bool) == Some(true)
}

/// Follows a local `$ref` (`#/$defs/X`), or returns the schema itself.
pub fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str)
        && let Some(pointer) = r.strip_prefix('#')
        && let Some(target) = root.pointer(pointer)
    {
        return target;
    }
    schema
}

/// Removes the credentials block and every secret field from form `values`, so that
/// what remains can be handed to a connector.
pub fn strip_secrets(form: &Value, values: &Value) -> Value {
    let mut out = values.clone();
    if let Some(obj) = out.as_object_mut() {
        obj.remove(CREDENTIALS_PROPERTY);
    }
    for path in secret_fields(form) {
        remove_path(&mut out, &path);
    }
    out
}

fn remove_path(v: &mut Value, path: &str) {
    let mut parts = path.split('.').peekable();
    let mut cur = v;
    while let Some(p) = parts.next() {
        let Some(obj) = cur.as_object_mut() else {
            return;
        };
        if parts.peek().is_none() {
            obj.remove(p);
            return;
        }
        match obj.get_mut(p) {
            Some(next) => cur = next,
            None => return,
        }
    }
}
