//! The four exchange types (AMQP 0-9-1 §3.1.3, `exchange.declare`'s `type`): a leaf that the
//! broker routes by and storage records name.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// An exchange type, as `exchange.declare` names it.
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "direct" => Some(Self::Direct),
            "fanout" => Some(Self::Fanout),
            "topic" => Some(Self::Topic),
            "headers" => Some(Self::Headers),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Fanout => "fanout",
            Self::Topic => "topic",
            Self::Headers => "headers",
        }
    }
}
