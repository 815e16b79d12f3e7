//! Sections compiled through the whole config pipeline (YAML text in,
//! snapshot or placed errors out).

mod health;
mod rules;
mod tls;
