using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Osprey.Serving;

/// <summary>
/// The stream routes of <c>osprey serve</c>: <c>GET/POST /v1/streams</c>, <c>GET/DELETE /v1/streams/{id}</c>, a stream's
/// results as Server-Sent Events (<c>/v1/streams/{id}/events</c>) and its annotated frames as MJPEG
/// (<c>/v1/streams/{id}/mjpeg</c>), and the page at <c>/</c>.
/// </summary>
internal static class StreamEndpoints
{
    /// <summary>The boundary of the MJPEG out's parts.</summary>
    public const string Boundary = "osprey-frame";

    /// <summary>How often an idle event stream gets a comment line (so proxies and clients see it is alive).</summary>
    public static readonly TimeSpan KeepAlive = TimeSpan.FromSeconds(15);

    public static void Map(WebApplication app, OspreyServer server)
    {
        var page = ServePage.Html;
        app.MapGet("/", () => Results.Text(page, "text/html; charset=utf-8"));
        app.MapGet("/v1/streams", () => Json(new { streams = server.Streams.All.Select(StreamJson.Info).ToArray() }));
        app.MapPost("/v1/streams", (Delegate)((HttpContext context) => Add(context, server)));
        // the id read from the route values: ASP.NET's route-handler analyzer (AD0001) fails on this project's {id} parameters
        app.MapGet("/v1/streams/{id}", (Delegate)((HttpContext context) => Get(server, Id(context))));
        app.MapDelete("/v1/streams/{id}", (Delegate)((HttpContext context) => Remove(server, Id(context))));
        app.MapGet("/v1/streams/{id}/events", (Delegate)((HttpContext context) => Events(context, server, Id(context))));
        app.MapGet("/v1/streams/{id}/mjpeg", (Delegate)((HttpContext context) => Mjpeg(context, server, Id(context))));
    }

    static string Id(HttpContext context) => context.Request.RouteValues["id"] as string ?? "";

    static IResult Json(object value, int status = StatusCodes.Status200OK) => Results.Json(value, ServeJson.Options, statusCode: status);

    static IResult NotFound(string id) => Json(new ErrorJson($"no stream '{id}' (GET /v1/streams lists them)."), StatusCodes.Status404NotFound);

    static async Task<IResult> Add(HttpContext context, OspreyServer server)
    {
        const string Expected = "expected a JSON body {\"source\": \"URL or path\"} (MJPEG over HTTP, RTSP, or a video file on the server's disk)";
        if (!context.Request.HasJsonContentType())
            return Json(new ErrorJson($"Content-Type {context.Request.ContentType ?? "(none)"}: {Expected}."), StatusCodes.Status415UnsupportedMediaType);
        AddStreamRequest? request;
        try
        {
            request = await context.Request.ReadFromJsonAsync<AddStreamRequest>(ServeJson.Options, context.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException e)
        {
            return Json(new ErrorJson($"the body is not valid JSON ({e.Message}): {Expected}."), StatusCodes.Status400BadRequest);
        }
        if (string.IsNullOrWhiteSpace(request?.Source))
            return Json(new ErrorJson($"no \"source\" given: {Expected}."), StatusCodes.Status400BadRequest);
        try
        {
            var stream = await server.Streams.AddAsync(request.Source).ConfigureAwait(false);
            context.Response.Headers.Location = $"/v1/streams/{stream.Id}";
            return Json(new { stream = StreamJson.Info(stream) }, StatusCodes.Status201Created);
        }
        catch (StreamOpenException e)
        {
            return Json(new ErrorJson(e.Message), e.StatusCode);
        }
    }

    static IResult Get(OspreyServer server, string id) =>
        server.Streams.Find(id) is { } stream ? Json(new { stream = StreamJson.Info(stream) }) : NotFound(id);

    static async Task<IResult> Remove(OspreyServer server, string id) =>
        await server.Streams.RemoveAsync(id).ConfigureAwait(false) is { } stream ? Json(new { stream = StreamJson.Info(stream) }) : NotFound(id);

    // text/event-stream: one "data:" line per result, "event: error" + "data:" last when the source fails or ends.
    static async Task Events(HttpContext context, OspreyServer server, string id)
    {
        if (server.Streams.Find(id) is not { } stream)
        {
            await NotFound(id).ExecuteAsync(context).ConfigureAwait(false);
            return;
        }
        var response = context.Response;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";       // nginx: pass each event on at once
        using var subscription = stream.Feed.Subscribe();
        var cancellation = context.RequestAborted;
        var body = response.Body;
        try
        {
            await Write(body, $"retry: 2000\n: stream {stream.Id}\n\n", cancellation).ConfigureAwait(false);
            var reader = subscription.Reader;
            while (true)
            {
                using (var quiet = CancellationTokenSource.CreateLinkedTokenSource(cancellation))
                {
                    quiet.CancelAfter(KeepAlive);
                    try
                    {
                        if (!await reader.WaitToReadAsync(quiet.Token).ConfigureAwait(false)) break;
                    }
                    catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
                    {
                        await Write(body, ": keep-alive\n\n", cancellation).ConfigureAwait(false);
                        continue;
                    }
                }
                var text = new StringBuilder();
                while (reader.TryRead(out var message))
                    text.Append(message.Event is { } name ? $"event: {name}\n" : "").Append("data: ").Append(message.Data).Append("\n\n");
                await Write(body, text.ToString(), cancellation).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            // the client went away
        }
    }

    // multipart/x-mixed-replace: one JPEG part per annotated frame (the newest when the client is slower), with its number.
    static async Task Mjpeg(HttpContext context, OspreyServer server, string id)
    {
        if (server.Streams.Find(id) is not { } stream)
        {
            await NotFound(id).ExecuteAsync(context).ConfigureAwait(false);
            return;
        }
        var response = context.Response;
        response.ContentType = $"multipart/x-mixed-replace; boundary={Boundary}";
        response.Headers.CacheControl = "no-cache";
        var cancellation = context.RequestAborted;
        var body = response.Body;
        try
        {
            await body.FlushAsync(cancellation).ConfigureAwait(false);   // the headers now: a viewer knows what comes before the first frame
            await foreach (var frame in stream.Feed.Frames(cancellation).ConfigureAwait(false))
            {
                string head = string.Create(CultureInfo.InvariantCulture,
                    $"--{Boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {frame.Jpeg.Length}\r\nX-Frame: {frame.Frame}\r\n\r\n");
                await body.WriteAsync(Encoding.ASCII.GetBytes(head), cancellation).ConfigureAwait(false);
                await body.WriteAsync(frame.Jpeg, cancellation).ConfigureAwait(false);
                await Write(body, "\r\n", cancellation).ConfigureAwait(false);
            }
            await Write(body, $"--{Boundary}--\r\n", cancellation).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // the viewer went away
        }
    }

    static async Task Write(Stream body, string text, CancellationToken cancellation)
    {
        await body.WriteAsync(Encoding.UTF8.GetBytes(text), cancellation).ConfigureAwait(false);
        await body.FlushAsync(cancellation).ConfigureAwait(false);
    }
}
