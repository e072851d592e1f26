//! AMQP 0-9-1 wire codec. See CONTRACT.md beside this file for the surface.
