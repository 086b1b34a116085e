"""The dashboard: one server-rendered page (readable without JavaScript), its stylesheet and a
small script that keeps it live over server-sent events. Everything is served by Nexus from this
package: no build step, no CDN."""
