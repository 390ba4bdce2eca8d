///
/// Implement it and serve it with [`CornerCasesServer`]; call it with [`CornerCasesClient`]. Service `Corners`.
#[cfg(feature = "corners")]
pub(crate) trait CornerCases: ::core::marker::Send + ::core::marker::Sync + 'static + Named {
    ///
    /// Route `Corners/WithContext` (request/response).
    fn with_context(
        &self,
        ctx: Context,
        req: Ping,
    ) -> impl ::core::future::Future<
        Output = Result<Pong, Status>,
    > + ::core::marker::Send;
    ///
    /// Route `Corners/Defaulted` (request/response). Idempotent: may be retried, so one call may run it more than once.
    fn defaulted(
        &self,
        req: Ping,
    ) -> impl ::core::future::Future<
        Output = Result<Pong, Status>,
    > + ::core::marker::Send {
        async move {
            let mut req = req;
            req.n += 1;
            Ok(Pong { n: req.n })
        }
    }
    ///
    /// Route `Corners/Old` (request/response).
    #[deprecated = "use with_context"]
    fn old(
        &self,
        req: Ping,
    ) -> impl ::core::future::Future<
        Output = Result<Pong, Status>,
    > + ::core::marker::Send;
    ///
    /// Route `Corners/Type` (client streaming).
    #[cfg(unix)]
    fn r#type(
        &self,
        ctx: Context,
        req: Streaming<Ping>,
    ) -> impl ::core::future::Future<
        Output = Result<Pong, Status>,
    > + ::core::marker::Send;
}
/// A client for the `Corners` service: one method per method of [`CornerCases`].
///
/// Cheap to clone: every clone calls over the same connection, and calls run concurrently.
#[cfg(feature = "corners")]
#[derive(::core::clone::Clone, ::core::fmt::Debug)]
pub(crate) struct CornerCasesClient {
    client: ::my_rpc::weft::__private::Client,
    data_mime: ::my_rpc::weft::__private::DataMimeCheck,
}
#[cfg(feature = "corners")]
impl CornerCasesClient {
    /// A client that calls the service over `client`'s connection.
    ///
    /// The connection's SETUP must have announced the data MIME type of the service's
    /// codec (see `weft::DataMime`); otherwise every call fails with
    /// `FAILED_PRECONDITION`, and sends nothing.
    pub(crate) fn new(client: ::my_rpc::weft::__private::Client) -> Self {
        let data_mime = ::my_rpc::weft::__private::DataMimeCheck::new(
            &client,
            "CornerCasesClient",
            <my_rpc::JsonCodec as ::my_rpc::weft::__private::DataMime>::MIME,
        );
        Self { client, data_mime }
    }
    /// Connects to the server at `addr` over TCP, as `Client::connect` does, announcing
    /// the data MIME type of the service's codec in SETUP, and returns a client that
    /// calls the service over that connection.
    pub(crate) async fn connect(
        addr: impl ::my_rpc::weft::__private::ToSocketAddrs,
    ) -> ::core::result::Result<Self, ::my_rpc::weft::__private::Error> {
        ::my_rpc::weft::__private::Client::builder()
            .data_mime(<my_rpc::JsonCodec as ::my_rpc::weft::__private::DataMime>::MIME)
            .connect(addr)
            .await
            .map(Self::new)
    }
    /// The connection handle this client calls over.
    pub(crate) fn inner(&self) -> &::my_rpc::weft::__private::Client {
        &self.client
    }
    ///
    /// Calls `Corners/WithContext` (request/response).
    pub(crate) async fn with_context(
        &self,
        request: impl ::my_rpc::weft::__private::IntoRequest<Ping>,
    ) -> ::core::result::Result<Pong, ::my_rpc::weft::__private::Status> {
        ::my_rpc::weft::__private::call_unary::<
            my_rpc::JsonCodec,
            Ping,
            Pong,
        >(
                self.data_mime.client(&self.client)?,
                ::my_rpc::weft::__private::MethodRoute::new(
                    "Corners/WithContext",
                    b"\xFE\0\0\x14\x13Corners/WithContext",
                ),
                ::my_rpc::weft::__private::IntoRequest::into_request(request),
            )
            .await
    }
    ///
    /// Calls `Corners/Defaulted` (request/response). Idempotent: may be retried.
    pub(crate) async fn defaulted(
        &self,
        request: impl ::my_rpc::weft::__private::IntoRequest<Ping>,
    ) -> ::core::result::Result<Pong, ::my_rpc::weft::__private::Status> {
        ::my_rpc::weft::__private::call_unary::<
            my_rpc::JsonCodec,
            Ping,
            Pong,
        >(
                self.data_mime.client(&self.client)?,
                ::my_rpc::weft::__private::MethodRoute::new(
                        "Corners/Defaulted",
                        b"\xFE\0\0\x12\x11Corners/Defaulted",
                    )
                    .idempotent(),
                ::my_rpc::weft::__private::IntoRequest::into_request(request),
            )
            .await
    }
    ///
    /// Calls `Corners/Old` (request/response).
    #[deprecated = "use with_context"]
    pub(crate) async fn old(
        &self,
        request: impl ::my_rpc::weft::__private::IntoRequest<Ping>,
    ) -> ::core::result::Result<Pong, ::my_rpc::weft::__private::Status> {
        ::my_rpc::weft::__private::call_unary::<
            my_rpc::JsonCodec,
            Ping,
            Pong,
        >(
                self.data_mime.client(&self.client)?,
                ::my_rpc::weft::__private::MethodRoute::new(
                    "Corners/Old",
                    b"\xFE\0\0\x0C\x0BCorners/Old",
                ),
                ::my_rpc::weft::__private::IntoRequest::into_request(request),
            )
            .await
    }
    ///
    /// Calls `Corners/Type` (client streaming).
    #[cfg(unix)]
    ///
    /// The call starts once `requests` yields its first message or ends; if it ends
    /// first, the server's method sees an empty request stream.
    pub(crate) async fn r#type(
        &self,
        requests: impl ::my_rpc::weft::__private::IntoStreamingRequest<Message = Ping>,
    ) -> ::core::result::Result<Pong, ::my_rpc::weft::__private::Status> {
        ::my_rpc::weft::__private::call_client_streaming::<
            my_rpc::JsonCodec,
            Ping,
            Pong,
            _,
        >(
                self.data_mime.client(&self.client)?,
                ::my_rpc::weft::__private::MethodRoute::new(
                    "Corners/Type",
                    b"\xFE\0\0\r\x0CCorners/Type",
                ),
                ::my_rpc::weft::__private::IntoStreamingRequest::into_streaming_request(
                    requests,
                ),
            )
            .await
    }
}
#[cfg(feature = "corners")]
impl ::core::convert::From<::my_rpc::weft::__private::Client> for CornerCasesClient {
    fn from(client: ::my_rpc::weft::__private::Client) -> Self {
        Self::new(client)
    }
}
/// Serves the `Corners` service by calling an implementation of [`CornerCases`]; add it to a server with `Server::builder().add_service(…)`.
///
/// Cheap to clone: clones share the implementation.
#[cfg(feature = "corners")]
pub(crate) struct CornerCasesServer<T> {
    inner: ::std::sync::Arc<T>,
}
#[cfg(feature = "corners")]
impl<T> CornerCasesServer<T> {
    /// Serves `service`.
    pub(crate) fn new(service: T) -> Self {
        Self::from_arc(::std::sync::Arc::new(service))
    }
    /// Serves a shared `service`.
    pub(crate) fn from_arc(service: ::std::sync::Arc<T>) -> Self {
        Self { inner: service }
    }
    /// The implementation.
    pub(crate) fn inner(&self) -> &::std::sync::Arc<T> {
        &self.inner
    }
}
#[cfg(feature = "corners")]
impl<T> ::core::clone::Clone for CornerCasesServer<T> {
    fn clone(&self) -> Self {
        Self {
            inner: <::std::sync::Arc<T> as ::core::clone::Clone>::clone(&self.inner),
        }
    }
}
#[cfg(feature = "corners")]
impl<T> ::core::fmt::Debug for CornerCasesServer<T> {
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
        f.debug_struct("CornerCasesServer").finish_non_exhaustive()
    }
}
#[cfg(feature = "corners")]
#[allow(deprecated)]
impl<T: CornerCases> CornerCasesServer<T> {
    /// Serves a call of `Corners/WithContext` with the implementation.
    fn __serve_with_context(
        service: &::std::sync::Arc<T>,
        call: ::my_rpc::weft::__private::Call,
        data: ::my_rpc::weft::__private::Bytes,
    ) -> ::my_rpc::weft::__private::Response {
        let service = <::std::sync::Arc<T> as ::core::clone::Clone>::clone(service);
        ::my_rpc::weft::__private::serve_unary::<
            my_rpc::JsonCodec,
            Ping,
            Pong,
            _,
            _,
        >(
            call,
            data,
            "Corners/WithContext",
            move |ctx, request| async move {
                <T as CornerCases>::with_context(&*service, ctx, request).await
            },
        )
    }
    /// Serves a call of `Corners/Defaulted` with the implementation.
    fn __serve_defaulted(
        service: &::std::sync::Arc<T>,
        call: ::my_rpc::weft::__private::Call,
        data: ::my_rpc::weft::__private::Bytes,
    ) -> ::my_rpc::weft::__private::Response {
        let service = <::std::sync::Arc<T> as ::core::clone::Clone>::clone(service);
        ::my_rpc::weft::__private::serve_unary::<
            my_rpc::JsonCodec,
            Ping,
            Pong,
            _,
            _,
        >(
            call,
            data,
            "Corners/Defaulted",
            move |_, request| async move {
                <T as CornerCases>::defaulted(&*service, request).await
            },
        )
    }
    /// Serves a call of `Corners/Old` with the implementation.
    fn __serve_old(
        service: &::std::sync::Arc<T>,
        call: ::my_rpc::weft::__private::Call,
        data: ::my_rpc::weft::__private::Bytes,
    ) -> ::my_rpc::weft::__private::Response {
        let service = <::std::sync::Arc<T> as ::core::clone::Clone>::clone(service);
        ::my_rpc::weft::__private::serve_unary::<
            my_rpc::JsonCodec,
            Ping,
            Pong,
            _,
            _,
        >(
            call,
            data,
            "Corners/Old",
            move |_, request| async move {
                <T as CornerCases>::old(&*service, request).await
            },
        )
    }
    /// Serves a call of `Corners/Type` with the implementation.
    #[cfg(unix)]
    fn __serve_type(
        service: &::std::sync::Arc<T>,
        call: ::my_rpc::weft::__private::Call,
        messages: ::my_rpc::weft::__private::PayloadStream,
    ) -> ::my_rpc::weft::__private::Responses {
        let service = <::std::sync::Arc<T> as ::core::clone::Clone>::clone(service);
        ::my_rpc::weft::__private::serve_client_streaming::<
            my_rpc::JsonCodec,
            Ping,
            Pong,
            _,
            _,
        >(
            call,
            messages,
            "Corners/Type",
            move |ctx, request| async move {
                <T as CornerCases>::r#type(&*service, ctx, request).await
            },
        )
    }
}
#[cfg(feature = "corners")]
#[allow(deprecated)]
impl<T: CornerCases> ::my_rpc::weft::__private::Handler for CornerCasesServer<T> {
    fn request_response(
        &self,
        call: ::my_rpc::weft::__private::Call,
        data: ::my_rpc::weft::__private::Bytes,
    ) -> ::my_rpc::weft::__private::Response {
        match call.route() {
            "Corners/WithContext" => Self::__serve_with_context(&self.inner, call, data),
            "Corners/Defaulted" => Self::__serve_defaulted(&self.inner, call, data),
            "Corners/Old" => Self::__serve_old(&self.inner, call, data),
            _ => {
                ::my_rpc::weft::__private::reject_unary(
                    ::my_rpc::weft::__private::not_served(
                        &call,
                        ::my_rpc::weft::__private::Service::routes(self),
                        "request/response",
                    ),
                )
            }
        }
    }
    fn fire_and_forget(
        &self,
        call: ::my_rpc::weft::__private::Call,
        data: ::my_rpc::weft::__private::Bytes,
    ) -> ::my_rpc::weft::__private::BoxFuture<'static, ()> {
        let _ = (call, data);
        ::my_rpc::weft::__private::ignore()
    }
    fn request_stream(
        &self,
        call: ::my_rpc::weft::__private::Call,
        data: ::my_rpc::weft::__private::Bytes,
    ) -> ::my_rpc::weft::__private::Responses {
        let _ = data;
        ::my_rpc::weft::__private::reject_stream(
            ::my_rpc::weft::__private::not_served(
                &call,
                ::my_rpc::weft::__private::Service::routes(self),
                "request/stream",
            ),
        )
    }
    fn request_channel(
        &self,
        call: ::my_rpc::weft::__private::Call,
        messages: ::my_rpc::weft::__private::PayloadStream,
    ) -> ::my_rpc::weft::__private::Responses {
        match call.route() {
            #[cfg(unix)]
            "Corners/Type" => Self::__serve_type(&self.inner, call, messages),
            _ => {
                ::my_rpc::weft::__private::reject_stream(
                    ::my_rpc::weft::__private::not_served(
                        &call,
                        ::my_rpc::weft::__private::Service::routes(self),
                        "channel",
                    ),
                )
            }
        }
    }
}
#[cfg(feature = "corners")]
impl<T: CornerCases> ::my_rpc::weft::__private::Service for CornerCasesServer<T> {
    fn routes(&self) -> &'static [&'static str] {
        &[
            "Corners/WithContext",
            "Corners/Defaulted",
            "Corners/Old",
            #[cfg(unix)]
            "Corners/Type",
        ]
    }
    fn __register(self, table: &mut ::my_rpc::weft::__private::MethodTable) {
        table
            .data_mime(<my_rpc::JsonCodec as ::my_rpc::weft::__private::DataMime>::MIME);
        table.unary("Corners/WithContext", &self.inner, Self::__serve_with_context);
        table.unary("Corners/Defaulted", &self.inner, Self::__serve_defaulted);
        table.unary("Corners/Old", &self.inner, Self::__serve_old);
        #[cfg(unix)] table.channel("Corners/Type", &self.inner, Self::__serve_type);
    }
}
