//! Transports: move bytes between sockets and the warren core.
