//! `GET /profiles/{fiscal_code}` and `POST /profiles`.
//!
//! Profile lookups go to IO and spend the institution's rate budget; until the delivery
//! side exists they answer 503 with a clear problem (after authenticating the caller).

use super::{authorize, ApiState, Body, Problem};
use http::{Request, Response};

pub fn lookup<B>(state: &ApiState, request: &Request<B>) -> Result<Response<Body>, Problem> {
    authorize(state, request)?;
    Err(Problem::unavailable(
        "profile lookups need the connection to IO, which this gateway version does not have yet",
        3600,
    ))
}
