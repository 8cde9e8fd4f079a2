//! Handler tests of the EC2 service over an in-memory store.
