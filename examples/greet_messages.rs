//! The messages of the greeter example, as protobuf messages written by hand with
//! `prost::Message` (a `.proto` file and prost-build would generate the same).

/// Who to greet.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    /// Their name.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// A greeting.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    /// The greeting.
    #[prost(string, tag = "1")]
    pub message: String,
}

/// Something that happened, to be recorded.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// What happened.
    #[prost(string, tag = "1")]
    pub what: String,
}

/// Which items to list.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListRequest {
    /// How many.
    #[prost(uint32, tag = "1")]
    pub count: u32,
}

/// One listed item.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Item {
    /// Its position.
    #[prost(uint32, tag = "1")]
    pub index: u32,
    /// Its name.
    #[prost(string, tag = "2")]
    pub name: String,
}

/// A chat message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Msg {
    /// The text.
    #[prost(string, tag = "1")]
    pub text: String,
}

/// A piece of an upload.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Chunk {
    /// The bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
}

/// What an upload amounted to.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// How many chunks arrived.
    #[prost(uint32, tag = "1")]
    pub chunks: u32,
    /// How many bytes in all.
    #[prost(uint64, tag = "2")]
    pub bytes: u64,
}
