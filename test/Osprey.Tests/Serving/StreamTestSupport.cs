using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Osprey.Serving;

namespace Osprey.Tests.Serving;

/// <summary>One Server-Sent Event: its type ("message" when none was named) and its data parsed as JSON.</summary>
internal sealed record SseEvent(string Event, JsonElement Data);

/// <summary>
/// A client of a stream's <c>/v1/streams/{id}/events</c>: reads the events as they come (a background task, as a browser's
/// EventSource does) until the server ends the response or the reader is disposed.
/// </summary>
internal sealed class SseReader : IAsyncDisposable
{
    readonly HttpResponseMessage response;
    readonly CancellationTokenSource stop = new();
    readonly List<SseEvent> events = new();
    readonly Task loop;

    SseReader(HttpResponseMessage response)
    {
        this.response = response;
        loop = Task.Run(Read);
    }

    /// <summary>The events so far.</summary>
    public IReadOnlyList<SseEvent> Events
    {
        get { lock (events) return events.ToArray(); }
    }

    /// <summary>The frames' results so far (the events without a type).</summary>
    public IReadOnlyList<JsonElement> Frames => Events.Where(e => e.Event == "message").Select(e => e.Data).ToArray();

    /// <summary>Completes when the server ended the response.</summary>
    public Task Ended => loop;

    /// <summary>The Content-Type the server sent.</summary>
    public string? ContentType => response.Content.Headers.ContentType?.ToString();

    public static async Task<SseReader> OpenAsync(HttpClient client, string path)
    {
        var response = await client.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
        if (response.StatusCode != HttpStatusCode.OK)   // (the body of an event stream is read by the reader, not here)
            Assert.Fail($"GET {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return new SseReader(response);
    }

    /// <summary>Waits until <paramref name="done"/> holds for the events so far; fails after <paramref name="timeout"/>.</summary>
    public async Task<IReadOnlyList<SseEvent>> WaitFor(Func<IReadOnlyList<SseEvent>, bool> done, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var now = Events;
            if (done(now)) return now;
            Assert.True(clock.Elapsed < timeout, $"no {what} within {timeout.TotalSeconds:0} s; {now.Count} events: " +
                string.Join(" | ", now.TakeLast(3).Select(e => $"{e.Event} {e.Data}")));
            await Task.Delay(20);
        }
    }

    async Task Read()
    {
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(stop.Token));
        string type = "message";
        var data = new List<string>();
        try
        {
            while (await reader.ReadLineAsync(stop.Token) is { } line)
            {
                if (line.Length == 0)
                {
                    if (data.Count > 0)
                        lock (events) events.Add(new SseEvent(type, JsonDocument.Parse(string.Join("\n", data)).RootElement.Clone()));
                    (type, data) = ("message", new List<string>());
                }
                else if (line.StartsWith("event:", StringComparison.Ordinal)) type = line[6..].Trim();
                else if (line.StartsWith("data:", StringComparison.Ordinal)) data.Add(line[5..].TrimStart());
            }
        }
        catch (OperationCanceledException)
        {
            // disposed
        }
        catch (IOException)
        {
            // the connection went away
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        await loop;
        response.Dispose();
        stop.Dispose();
    }
}

/// <summary>Stream helpers: add one, read the list, wait for a condition.</summary>
internal static class StreamTestSupport
{
    /// <summary>Server options for the stream tests: the tiny model's settings, no reopening of ended streams.</summary>
    public static ServeOptions Options(string model) => new()
    {
        Model = model, Predict = ServeTestSupport.TinyOptions, StreamReconnects = 0, MaxBatch = 4, MaxDelay = TimeSpan.FromMilliseconds(5),
    };

    /// <summary>POSTs a stream; asserts 201 and returns its description.</summary>
    public static async Task<JsonElement> Add(HttpClient client, string source)
    {
        using var response = await client.PostAsJsonAsync("/v1/streams", new { source });
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"POST /v1/streams {source}: {(int)response.StatusCode} {body}");
        var stream = JsonDocument.Parse(body).RootElement.GetProperty("stream").Clone();
        Assert.Equal($"/v1/streams/{stream.GetProperty("id").GetString()}", response.Headers.Location?.OriginalString);
        return stream;
    }

    /// <summary>GET /v1/streams/{id}'s description.</summary>
    public static async Task<JsonElement> Get(HttpClient client, string id)
    {
        using var response = await client.GetAsync($"/v1/streams/{id}");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await ServeTestSupport.JsonOf(response)).GetProperty("stream");
    }

    /// <summary>Polls <paramref name="check"/> until it holds; fails after <paramref name="timeout"/> naming <paramref name="what"/>.</summary>
    public static async Task Until(Func<Task<bool>> check, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await check())
        {
            Assert.True(clock.Elapsed < timeout, $"{what}: not within {timeout.TotalSeconds:0} s");
            await Task.Delay(25);
        }
    }
}
