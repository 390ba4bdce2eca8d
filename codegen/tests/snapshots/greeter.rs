/// Greets people.
///
/// Implement it and serve it with [`GreeterServer`]; call it with [`GreeterClient`]. Service `greet.Greeter`.
pub trait Greeter: ::core::marker::Send + ::core::marker::Sync + 'static {
    /// request/response
    ///
    /// Route `greet.Greeter/SayHello` (request/response).
    fn say_hello(
        &self,
        req: HelloRequest,
    ) -> impl ::core::future::Future<
        Output = Result<HelloReply, Status>,
    > + ::core::marker::Send;
    /// fire-and-forget: no return value, no reply on the wire
    ///
    /// Route `greet.Greeter/Record` (fire-and-forget).
    fn record(
        &self,
        event: Event,
    ) -> impl ::core::future::Future<Output = ()> + ::core::marker::Send;
    /// request/stream: one request, a stream of replies
    ///
    /// Route `greet.Greeter/List` (request/stream).
    fn list(
        &self,
        req: ListRequest,
    ) -> impl ::core::future::Future<
        Output = Result<
            impl Stream<Item = Result<Item, Status>> + ::core::marker::Send + 'static,
            Status,
        >,
    > + ::core::marker::Send;
    /// channel: a stream each way
    ///
    /// Route `greet.Greeter/Chat` (channel).
    fn chat(
        &self,
        msgs: Streaming<Msg>,
    ) -> impl ::core::future::Future<
        Output = Result<
            impl Stream<Item = Result<Msg, Status>> + ::core::marker::Send + 'static,
            Status,
        >,
    > + ::core::marker::Send;
    /// client streaming: a stream in, one reply out
    ///
    /// Route `greet.Greeter/Upload` (client streaming).
    fn upload(
        &self,
        chunks: Streaming<Chunk>,
    ) -> impl ::core::future::Future<
        Output = Result<Summary, Status>,
    > + ::core::marker::Send;
}
/// A client for the `greet.Greeter` service: one method per method of [`Greeter`].
///
/// Cheap to clone: every clone calls over the same connection, and calls run concurrently.
#[derive(::core::clone::Clone, ::core::fmt::Debug)]
pub struct GreeterClient {
    client: ::weft::__private::Client,
    data_mime: ::weft::__private::DataMimeCheck,
}
impl GreeterClient {
    /// A client that calls the service over `client`'s connection.
    ///
    /// The connection's SETUP must have announced the data MIME type of the service's
    /// codec (see `weft::DataMime`); otherwise every call fails with
    /// `FAILED_PRECONDITION`, and sends nothing.
    pub fn new(client: ::weft::__private::Client) -> Self {
        let data_mime = ::weft::__private::DataMimeCheck::new(
            &client,
            "GreeterClient",
            <::weft::__private::ProstCodec as ::weft::__private::DataMime>::MIME,
        );
        Self { client, data_mime }
    }
    /// Connects to the server at `addr` over TCP, as `Client::connect` does, announcing
    /// the data MIME type of the service's codec in SETUP, and returns a client that
    /// calls the service over that connection.
    pub async fn connect(
        addr: impl ::weft::__private::ToSocketAddrs,
    ) -> ::core::result::Result<Self, ::weft::__private::Error> {
        ::weft::__private::Client::builder()
            .data_mime(
                <::weft::__private::ProstCodec as ::weft::__private::DataMime>::MIME,
            )
            .connect(addr)
            .await
            .map(Self::new)
    }
    /// The connection handle this client calls over.
    pub fn inner(&self) -> &::weft::__private::Client {
        &self.client
    }
    /// request/response
    ///
    /// Calls `greet.Greeter/SayHello` (request/response).
    pub async fn say_hello(
        &self,
        request: impl ::weft::__private::IntoRequest<HelloRequest>,
    ) -> ::core::result::Result<HelloReply, ::weft::__private::Status> {
        ::weft::__private::call_unary::<
            ::weft::__private::ProstCodec,
            HelloRequest,
            HelloReply,
        >(
                self.data_mime.client(&self.client)?,
                ::weft::__private::MethodRoute::new(
                    "greet.Greeter/SayHello",
                    b"\xFE\0\0\x17\x16greet.Greeter/SayHello",
                ),
                ::weft::__private::IntoRequest::into_request(request),
            )
            .await
    }
    /// fire-and-forget: no return value, no reply on the wire
    ///
    /// Calls `greet.Greeter/Record` (fire-and-forget).
    ///
    /// Resolves once the request is handed to the connection; the server sends no answer.
    pub async fn record(
        &self,
        request: impl ::weft::__private::IntoRequest<Event>,
    ) -> ::core::result::Result<(), ::weft::__private::Status> {
        ::weft::__private::call_fire_and_forget::<
            ::weft::__private::ProstCodec,
            Event,
        >(
                self.data_mime.client(&self.client)?,
                ::weft::__private::MethodRoute::new(
                    "greet.Greeter/Record",
                    b"\xFE\0\0\x15\x14greet.Greeter/Record",
                ),
                ::weft::__private::IntoRequest::into_request(request),
            )
            .await
    }
    /// request/stream: one request, a stream of replies
    ///
    /// Calls `greet.Greeter/List` (request/stream).
    pub async fn list(
        &self,
        request: impl ::weft::__private::IntoRequest<ListRequest>,
    ) -> ::core::result::Result<
        ::weft::__private::Streaming<Item>,
        ::weft::__private::Status,
    > {
        ::weft::__private::call_stream::<
            ::weft::__private::ProstCodec,
            ListRequest,
            Item,
        >(
                self.data_mime.client(&self.client)?,
                ::weft::__private::MethodRoute::new(
                    "greet.Greeter/List",
                    b"\xFE\0\0\x13\x12greet.Greeter/List",
                ),
                ::weft::__private::IntoRequest::into_request(request),
            )
            .await
    }
    /// channel: a stream each way
    ///
    /// Calls `greet.Greeter/Chat` (channel).
    ///
    /// The call starts once `requests` yields its first message or ends; if it ends
    /// first, the server's method sees an empty request stream.
    pub async fn chat(
        &self,
        requests: impl ::weft::__private::IntoStreamingRequest<Message = Msg>,
    ) -> ::core::result::Result<
        ::weft::__private::Streaming<Msg>,
        ::weft::__private::Status,
    > {
        ::weft::__private::call_channel::<
            ::weft::__private::ProstCodec,
            Msg,
            Msg,
            _,
        >(
                self.data_mime.client(&self.client)?,
                ::weft::__private::MethodRoute::new(
                    "greet.Greeter/Chat",
                    b"\xFE\0\0\x13\x12greet.Greeter/Chat",
                ),
                ::weft::__private::IntoStreamingRequest::into_streaming_request(requests),
            )
            .await
    }
    /// client streaming: a stream in, one reply out
    ///
    /// Calls `greet.Greeter/Upload` (client streaming).
    ///
    /// The call starts once `requests` yields its first message or ends; if it ends
    /// first, the server's method sees an empty request stream.
    pub async fn upload(
        &self,
        requests: impl ::weft::__private::IntoStreamingRequest<Message = Chunk>,
    ) -> ::core::result::Result<Summary, ::weft::__private::Status> {
        ::weft::__private::call_client_streaming::<
            ::weft::__private::ProstCodec,
            Chunk,
            Summary,
            _,
        >(
                self.data_mime.client(&self.client)?,
                ::weft::__private::MethodRoute::new(
                    "greet.Greeter/Upload",
                    b"\xFE\0\0\x15\x14greet.Greeter/Upload",
                ),
                ::weft::__private::IntoStreamingRequest::into_streaming_request(requests),
            )
            .await
    }
}
impl ::core::convert::From<::weft::__private::Client> for GreeterClient {
    fn from(client: ::weft::__private::Client) -> Self {
        Self::new(client)
    }
}
/// Serves the `greet.Greeter` service by calling an implementation of [`Greeter`]; add it to a server with `Server::builder().add_service(…)`.
///
/// Cheap to clone: clones share the implementation.
pub struct GreeterServer<T> {
    inner: ::std::sync::Arc<T>,
}
impl<T> GreeterServer<T> {
    /// Serves `service`.
    pub fn new(service: T) -> Self {
        Self::from_arc(::std::sync::Arc::new(service))
    }
    /// Serves a shared `service`.
    pub fn from_arc(service: ::std::sync::Arc<T>) -> Self {
        Self { inner: service }
    }
    /// The implementation.
    pub fn inner(&self) -> &::std::sync::Arc<T> {
        &self.inner
    }
}
impl<T> ::core::clone::Clone for GreeterServer<T> {
    fn clone(&self) -> Self {
        Self {
            inner: <::std::sync::Arc<T> as ::core::clone::Clone>::clone(&self.inner),
        }
    }
}
impl<T> ::core::fmt::Debug for GreeterServer<T> {
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
        f.debug_struct("GreeterServer").finish_non_exhaustive()
    }
}
#[allow(deprecated)]
impl<T: Greeter> GreeterServer<T> {
    /// Serves a call of `greet.Greeter/SayHello` with the implementation.
    fn __serve_say_hello(
        service: &::std::sync::Arc<T>,
        call: ::weft::__private::Call,
        data: ::weft::__private::Bytes,
    ) -> ::weft::__private::Response {
        let service = <::std::sync::Arc<T> as ::core::clone::Clone>::clone(service);
        ::weft::__private::serve_unary::<
            ::weft::__private::ProstCodec,
            HelloRequest,
            HelloReply,
            _,
            _,
        >(
            call,
            data,
            "greet.Greeter/SayHello",
            move |_, request| async move {
                <T as Greeter>::say_hello(&*service, request).await
            },
        )
    }
    /// Serves a call of `greet.Greeter/Record` with the implementation.
    fn __serve_record(
        service: &::std::sync::Arc<T>,
        call: ::weft::__private::Call,
        data: ::weft::__private::Bytes,
    ) -> ::weft::__private::BoxFuture<'static, ()> {
        let service = <::std::sync::Arc<T> as ::core::clone::Clone>::clone(service);
        ::weft::__private::serve_fire_and_forget::<
            ::weft::__private::ProstCodec,
            Event,
            _,
            _,
        >(
            call,
            data,
            "greet.Greeter/Record",
            move |_, request| async move {
                <T as Greeter>::record(&*service, request).await
            },
        )
    }
    /// Serves a call of `greet.Greeter/List` with the implementation.
    fn __serve_list(
        service: &::std::sync::Arc<T>,
        call: ::weft::__private::Call,
        data: ::weft::__private::Bytes,
    ) -> ::weft::__private::Responses {
        let service = <::std::sync::Arc<T> as ::core::clone::Clone>::clone(service);
        ::weft::__private::serve_stream::<
            ::weft::__private::ProstCodec,
            ListRequest,
            Item,
            _,
            _,
        >(
            call,
            data,
            "greet.Greeter/List",
            move |_, request| async move {
                ::core::result::Result::map(
                    <T as Greeter>::list(&*service, request).await,
                    ::weft::__private::box_stream,
                )
            },
        )
    }
    /// Serves a call of `greet.Greeter/Chat` with the implementation.
    fn __serve_chat(
        service: &::std::sync::Arc<T>,
        call: ::weft::__private::Call,
        messages: ::weft::__private::PayloadStream,
    ) -> ::weft::__private::Responses {
        let service = <::std::sync::Arc<T> as ::core::clone::Clone>::clone(service);
        ::weft::__private::serve_channel::<
            ::weft::__private::ProstCodec,
            Msg,
            Msg,
            _,
            _,
        >(
            call,
            messages,
            "greet.Greeter/Chat",
            move |_, request| async move {
                ::core::result::Result::map(
                    <T as Greeter>::chat(&*service, request).await,
                    ::weft::__private::box_stream,
                )
            },
        )
    }
    /// Serves a call of `greet.Greeter/Upload` with the implementation.
    fn __serve_upload(
        service: &::std::sync::Arc<T>,
        call: ::weft::__private::Call,
        messages: ::weft::__private::PayloadStream,
    ) -> ::weft::__private::Responses {
        let service = <::std::sync::Arc<T> as ::core::clone::Clone>::clone(service);
        ::weft::__private::serve_client_streaming::<
            ::weft::__private::ProstCodec,
            Chunk,
            Summary,
            _,
            _,
        >(
            call,
            messages,
            "greet.Greeter/Upload",
            move |_, request| async move {
                <T as Greeter>::upload(&*service, request).await
            },
        )
    }
}
#[allow(deprecated)]
impl<T: Greeter> ::weft::__private::Handler for GreeterServer<T> {
    fn request_response(
        &self,
        call: ::weft::__private::Call,
        data: ::weft::__private::Bytes,
    ) -> ::weft::__private::Response {
        match call.route() {
            "greet.Greeter/SayHello" => Self::__serve_say_hello(&self.inner, call, data),
            _ => {
                ::weft::__private::reject_unary(
                    ::weft::__private::not_served(
                        &call,
                        ::weft::__private::Service::routes(self),
                        "request/response",
                    ),
                )
            }
        }
    }
    fn fire_and_forget(
        &self,
        call: ::weft::__private::Call,
        data: ::weft::__private::Bytes,
    ) -> ::weft::__private::BoxFuture<'static, ()> {
        match call.route() {
            "greet.Greeter/Record" => Self::__serve_record(&self.inner, call, data),
            _ => ::weft::__private::ignore(),
        }
    }
    fn request_stream(
        &self,
        call: ::weft::__private::Call,
        data: ::weft::__private::Bytes,
    ) -> ::weft::__private::Responses {
        match call.route() {
            "greet.Greeter/List" => Self::__serve_list(&self.inner, call, data),
            _ => {
                ::weft::__private::reject_stream(
                    ::weft::__private::not_served(
                        &call,
                        ::weft::__private::Service::routes(self),
                        "request/stream",
                    ),
                )
            }
        }
    }
    fn request_channel(
        &self,
        call: ::weft::__private::Call,
        messages: ::weft::__private::PayloadStream,
    ) -> ::weft::__private::Responses {
        match call.route() {
            "greet.Greeter/Chat" => Self::__serve_chat(&self.inner, call, messages),
            "greet.Greeter/Upload" => Self::__serve_upload(&self.inner, call, messages),
            _ => {
                ::weft::__private::reject_stream(
                    ::weft::__private::not_served(
                        &call,
                        ::weft::__private::Service::routes(self),
                        "channel",
                    ),
                )
            }
        }
    }
}
impl<T: Greeter> ::weft::__private::Service for GreeterServer<T> {
    fn routes(&self) -> &'static [&'static str] {
        &[
            "greet.Greeter/SayHello",
            "greet.Greeter/Record",
            "greet.Greeter/List",
            "greet.Greeter/Chat",
            "greet.Greeter/Upload",
        ]
    }
    fn __register(self, table: &mut ::weft::__private::MethodTable) {
        table
            .data_mime(
                <::weft::__private::ProstCodec as ::weft::__private::DataMime>::MIME,
            );
        table.unary("greet.Greeter/SayHello", &self.inner, Self::__serve_say_hello);
        table.fire_and_forget("greet.Greeter/Record", &self.inner, Self::__serve_record);
        table.stream("greet.Greeter/List", &self.inner, Self::__serve_list);
        table.channel("greet.Greeter/Chat", &self.inner, Self::__serve_chat);
        table.channel("greet.Greeter/Upload", &self.inner, Self::__serve_upload);
    }
}
