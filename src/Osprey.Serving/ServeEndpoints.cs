using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Prometheus;

namespace Osprey.Serving;

/// <summary>
/// The routes of <c>osprey serve</c>: <c>POST /v1/detect</c>, <c>GET /v1/models</c>, <c>POST /v1/models</c>,
/// <c>GET /health</c>, <c>GET /metrics</c>, the stream routes and the page (<see cref="StreamEndpoints"/>); and the
/// middleware that counts every answer by route and status code.
/// </summary>
internal static class ServeEndpoints
{
    /// <summary>The route label of requests that matched no route.</summary>
    public const string UnknownRoute = "unmatched";

    public static void Map(WebApplication app, OspreyServer server)
    {
        var metrics = server.Metrics;
        app.Use(async (context, next) =>
        {
            long start = Stopwatch.GetTimestamp();
            try
            {
                await next(context).ConfigureAwait(false);
            }
            finally
            {
                string route = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? UnknownRoute;
                metrics.Requests.WithLabels(route, context.Response.StatusCode.ToString(CultureInfo.InvariantCulture)).Inc();
                metrics.RequestLatency.WithLabels(route).Observe(Stopwatch.GetElapsedTime(start).TotalSeconds);
            }
        });
        app.MapPost("/v1/detect", (Delegate)((HttpContext context) => Detect(context, server)));   // Delegate: the IResult is written
        app.MapGet("/v1/models", () => Json(new { model = ServeJson.Model(server.Models.Current!) }));
        app.MapPost("/v1/models", (Delegate)((HttpContext context) => Load(context, server)));
        app.MapGet("/health", () => server.IsStopping
            ? Json(new { status = "stopping" }, StatusCodes.Status503ServiceUnavailable)
            : Json(new { status = "ok", model_version = server.Models.Current?.Version, queue_depth = server.Batcher.Count }));
        app.MapMetrics("/metrics", metrics.Registry);
        StreamEndpoints.Map(app, server);
    }

    static IResult Json(object value, int status = StatusCodes.Status200OK) => Results.Json(value, ServeJson.Options, statusCode: status);

    static IResult Error(int status, string message) => Json(new ErrorJson(message), status);

    static async Task<IResult> Detect(HttpContext context, OspreyServer server)
    {
        var read = await ImageInput.ReadAsync(context.Request, server.Options, context.RequestAborted).ConfigureAwait(false);
        if (read.Image is null) return Error(read.Status, read.Error!);
        using var image = read.Image;
        var item = new InferenceItem(image, "request");
        if (!server.TrySubmit(item))
        {
            context.Response.Headers.RetryAfter = "1";
            return Error(StatusCodes.Status503ServiceUnavailable, server.Batcher.IsCompleted
                ? "the server is stopping."
                : $"the queue is full ({server.Batcher.MaxQueue} images waiting, max_queue={server.Batcher.MaxQueue}): retry later.");
        }
        try
        {
            // not cancellable on purpose: the worker reads the image until the result is set, so it must outlive the wait
            return Json(ServeJson.Detect(await item.Result.ConfigureAwait(false)));
        }
        catch (Exception e)
        {
            return Error(StatusCodes.Status500InternalServerError, $"inference failed: {e.Message}");
        }
    }

    static async Task<IResult> Load(HttpContext context, OspreyServer server)
    {
        const string Expected = "expected a JSON body {\"model\": \"path\"} (weights, YAML or .onnx on the server's disk)";
        if (!context.Request.HasJsonContentType())
            return Error(StatusCodes.Status415UnsupportedMediaType, $"Content-Type {context.Request.ContentType ?? "(none)"}: {Expected}.");
        LoadRequest? request;
        try
        {
            request = await context.Request.ReadFromJsonAsync<LoadRequest>(ServeJson.Options, context.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException e)
        {
            return Error(StatusCodes.Status400BadRequest, $"the body is not valid JSON ({e.Message}): {Expected}.");
        }
        if (string.IsNullOrWhiteSpace(request?.Model)) return Error(StatusCodes.Status400BadRequest, $"no \"model\" given: {Expected}.");
        var previous = server.Models.Current;
        try
        {
            var loaded = await server.Models.LoadAsync(request.Model, CancellationToken.None).ConfigureAwait(false);
            return Json(new
            {
                model = ServeJson.Model(loaded),
                previous = previous is null ? null : new ModelRef(previous.Version, previous.Path),
            });
        }
        catch (ModelLoadException e)
        {
            return Error(e.StatusCode, e.Message);
        }
    }
}
