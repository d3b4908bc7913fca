"""Example services shipped with Bento; `bento demo` runs `bento.examples.orders`."""
