using System.Buffers.Binary;
using System.Net;
using System.Text;
using OpenCvSharp;
using Osprey.Serving;
using Osprey.Tests.Data;

namespace Osprey.Tests.Serving;

/// <summary>
/// Bad bodies get a clear 4xx naming the problem, and the server answers a good request after each (a tiny model at
/// imgsz 64, so the good requests cost little).
/// </summary>
public class ServerBadInputTests : IDisposable
{
    readonly string dir = DataTestFiles.NewTempDir();

    public void Dispose() => Directory.Delete(dir, true);

    ServeOptions TinyOptions() => new() { Model = ServeTestSupport.WriteTinyModel(dir, "a", seed: 1), Predict = ServeTestSupport.TinyOptions };

    [Fact]
    public async Task EachBadBodyGetsAClear4xxAndTheServerKeepsServing()
    {
        await using var scope = await ServerScope.StartAsync(TinyOptions());
        var bus = File.ReadAllBytes(Path.Combine(DataTestFiles.SharedData, "images", "bus.jpg"));
        using var wide = new Mat(16, 9000, MatType.CV_8UC3, new Scalar(0, 0, 0));
        var widePng = wide.ImEncode(".png");                              // a real PNG, small on the wire, 9000 px wide
        var cases = new (string What, HttpContent Body, HttpStatusCode Status, string Says)[]
        {
            ("empty body", ServeTestSupport.Body(Array.Empty<byte>()), HttpStatusCode.BadRequest, "empty body"),
            ("text as text/plain", ServeTestSupport.Body(Encoding.UTF8.GetBytes("hello"), "text/plain"), HttpStatusCode.UnsupportedMediaType,
                "Content-Type text/plain is not an image"),
            ("JSON", ServeTestSupport.Body("{\"image\": 1}"u8.ToArray(), "application/json"), HttpStatusCode.UnsupportedMediaType,
                "Content-Type application/json is not an image"),
            ("text as image/jpeg", ServeTestSupport.Body(Encoding.UTF8.GetBytes("hello, this is no JPEG")), HttpStatusCode.BadRequest,
                "is not an image OpenCV can decode"),
            ("a JPEG cut after 400 bytes", ServeTestSupport.Body(bus[..400]), HttpStatusCode.BadRequest, "is not an image OpenCV can decode"),
            ("raw bytes without a type", ServeTestSupport.Body(ModelHostTests.RandomBytes(1000, seed: 3), null), HttpStatusCode.BadRequest,
                "is not an image OpenCV can decode"),
            ("9000 px wide PNG", ServeTestSupport.Body(widePng, "image/png"), HttpStatusCode.RequestEntityTooLarge,
                "the image is 9000×16 pixels: over the limit of 8192 pixels a side"),
            ("a PNG header claiming 7100×7100", ServeTestSupport.Body(PngHeader(7100, 7100), "image/png"), HttpStatusCode.RequestEntityTooLarge,
                "the image is 7100×7100 pixels (50.4 MP): over the limit of 50 megapixels"),
            ("multipart without a file", new MultipartFormDataContent { { new StringContent("x"), "note" } }, HttpStatusCode.BadRequest,
                "the multipart body has no file"),
        };
        foreach (var (what, body, status, says) in cases)
        {
            using var response = await scope.Client.PostAsync("/v1/detect", body);
            Assert.True(status == response.StatusCode, $"{what}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            string error = (await ServeTestSupport.JsonOf(response)).GetProperty("error").GetString()!;
            Assert.Contains(says, error);
            await AssertServes(scope, bus);
        }

        // errors read as written (no \u escapes of quotes or ×)
        using (var response = await scope.Client.PostAsync("/v1/detect", ServeTestSupport.Body(widePng, "image/png")))
            Assert.Contains("\"the image is 9000×16 pixels", await response.Content.ReadAsStringAsync());

        // 33 MiB declared: refused from its Content-Length before the body is sent (Expect: 100-continue)
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/detect") { Content = ServeTestSupport.Body(new byte[33 << 20]) })
        {
            request.Headers.ExpectContinue = true;
            using var response = await scope.Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
            Assert.Contains($"the body is {33 << 20} bytes: over the limit of 32 MiB",
                (await ServeTestSupport.JsonOf(response)).GetProperty("error").GetString());
        }
        await AssertServes(scope, bus);

        string metrics = await scope.MetricsText();
        Assert.Equal(5, ServeTestSupport.Metric(metrics, "osprey_requests_total", ("route", "/v1/detect"), ("code", "400")));
        Assert.Equal(2, ServeTestSupport.Metric(metrics, "osprey_requests_total", ("route", "/v1/detect"), ("code", "415")));
        Assert.Equal(2 + 1 + 1, ServeTestSupport.Metric(metrics, "osprey_requests_total", ("route", "/v1/detect"), ("code", "413")));
        Assert.Equal(cases.Length + 1, ServeTestSupport.Metric(metrics, "osprey_requests_total", ("route", "/v1/detect"), ("code", "200")));
        Assert.Equal(cases.Length + 1, ServeTestSupport.Metric(metrics, "osprey_frames_total", ("source", "request")));   // bad bodies never reach the model
    }

    [Fact]
    public async Task AChunkedBodyOverTheLimitIs413()
    {
        // no Content-Length: Kestrel stops reading at the limit
        await using var scope = await ServerScope.StartAsync(TinyOptions() with { MaxBodyBytes = 1 << 20 });
        var content = new StreamContent(new MemoryStream(new byte[3 << 20]));
        content.Headers.ContentType = new("image/jpeg");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/detect") { Content = content };
        request.Headers.TransferEncodingChunked = true;
        HttpResponseMessage? response = null;
        try
        {
            response = await scope.Client.SendAsync(request);
        }
        catch (HttpRequestException)
        {
            // the server may close the connection while the client still sends; the status is checked below when it arrives
        }
        if (response is not null)
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
            Assert.Contains("over the limit of 1 MiB", (await ServeTestSupport.JsonOf(response)).GetProperty("error").GetString());
            response.Dispose();
        }
        Assert.Equal(1, ServeTestSupport.Metric(await scope.MetricsText(), "osprey_requests_total", ("route", "/v1/detect"), ("code", "413")));
        await AssertServes(scope, File.ReadAllBytes(Path.Combine(DataTestFiles.SharedData, "images", "bus.jpg")));
    }

    [Fact]
    public void HeaderSizesMatchWhatOpenCvEncodes()
    {
        foreach (var (ext, width, height) in new[] { (".png", 321, 123), (".jpg", 640, 17), (".jpg", 1, 4000), (".bmp", 77, 55) })
        {
            using var image = new Mat(height, width, MatType.CV_8UC3, new Scalar(10, 20, 30));
            Assert.Equal((width, height), ImageHeader.TryReadSize(image.ImEncode(ext)));
        }
        using var progressive = new Mat(90, 130, MatType.CV_8UC3, new Scalar(1, 2, 3));
        Assert.Equal((130, 90), ImageHeader.TryReadSize(progressive.ImEncode(".jpg", new ImageEncodingParam(ImwriteFlags.JpegProgressive, 1))));
        Assert.Null(ImageHeader.TryReadSize("GIF89a"u8));
        Assert.Null(ImageHeader.TryReadSize(new byte[] { 0xFF, 0xD8, 0xFF }));
    }

    static async Task AssertServes(ServerScope scope, byte[] jpeg)
    {
        using var response = await scope.Client.PostAsync("/v1/detect", ServeTestSupport.Body(jpeg));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = await ServeTestSupport.JsonOf(response);
        Assert.Equal(3, json.GetProperty("detections").GetArrayLength());          // max_det 3 at conf 0
        Assert.Equal(810, json.GetProperty("image").GetProperty("width").GetInt32());   // bus.jpg
    }

    // The first 33 bytes of a PNG: signature, IHDR with the size, 8-bit RGB; no pixel data follows.
    static byte[] PngHeader(int width, int height)
    {
        var bytes = new byte[33];
        new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, (byte)'I', (byte)'H', (byte)'D', (byte)'R' }.CopyTo(bytes, 0);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(16), width);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(20), height);
        bytes[24] = 8;
        bytes[25] = 2;
        return bytes;
    }
}
