//! Sections compiled through the whole config pipeline (YAML text in,
//! snapshot or placed errors out).

mod health;
mod limits;
mod rules;
mod servers;
mod tls;
