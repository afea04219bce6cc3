//! The DHCP decision engine (RFC 2131), sans-IO: a request, the lease tables and `now` in;
//! a reply and the lease change to journal out.
