using System.Text;
using Osprey.Sources;

namespace Osprey.Tests.Sources;

/// <summary>The multipart parser behind MJPEG streams, on hand-written bodies delivered a few bytes at a time.</summary>
public class MultipartReaderTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(4096)]
    public void PartsWithAndWithoutContentLengthInOrder(int chunk)
    {
        // part 1 has a Content-Length and a body that contains the boundary text (so it must not be scanned);
        // part 2 has none and ends at the next boundary (the CRLF before it is not part of the body);
        // part 3 uses bare LF line ends; then the closing boundary and an epilogue that must be ignored
        string body = "preamble\r\n--cam\r\nContent-Type: image/jpeg\r\nContent-Length: 13\r\n\r\nab--cam\r\ncd!!\r\n" +
                      "--cam\r\ncontent-type: image/jpeg\r\n\r\nsecond part\r\n" +
                      "--cam\nX-Timestamp: 7\n\nthird\n--cam--\r\n--cam\r\n\r\nnever\r\n";
        var reader = new MultipartReader(Chunked(body, chunk), "--cam");
        var first = reader.Next()!;
        Assert.Equal("ab--cam\r\ncd!!", Encoding.ASCII.GetString(first.Body));
        Assert.Equal("13", first.Headers["content-length"]);
        Assert.True(first.Complete);
        var second = reader.Next()!;
        Assert.Equal("second part", Encoding.ASCII.GetString(second.Body));
        Assert.Equal("image/jpeg", second.Headers["Content-Type"]);
        var third = reader.Next()!;
        Assert.Equal("third", Encoding.ASCII.GetString(third.Body));
        Assert.Equal("7", third.Headers["X-Timestamp"]);
        Assert.Null(reader.Next());
    }

    [Fact]
    public void StreamThatEndsMidPartEndsThere()
    {
        // Content-Length promises 10 bytes, 4 arrive: the part is dropped
        var cut = new MultipartReader(Chunked("--b\r\nContent-Length: 10\r\n\r\nabcd", 2), "b");
        Assert.Null(cut.Next());
        // no Content-Length: what arrived is returned, marked incomplete (no boundary after it)
        var open = new MultipartReader(Chunked("--b\r\n\r\nwhole\r\n--b\r\n\r\nhalf", 2), "b");
        Assert.Equal(("whole", true), Describe(open.Next()!));
        Assert.Equal(("half", false), Describe(open.Next()!));
        Assert.Null(open.Next());
    }

    [Fact]
    public void LargePartGrowsTheBuffer()
    {
        var payload = new byte[300_000];
        new Random(5).NextBytes(payload);
        for (int i = 0; i < payload.Length; i++) if (payload[i] == '-') payload[i] = 0; // no stray "--b"
        var bytes = Encoding.ASCII.GetBytes("--b\r\n\r\n").Concat(payload).Concat(Encoding.ASCII.GetBytes("\r\n--b--")).ToArray();
        var reader = new MultipartReader(Chunked(bytes, 7000), "b");
        Assert.Equal(payload, reader.Next()!.Body);
        Assert.Null(reader.Next());
    }

    private static (string, bool) Describe(MultipartPart part) => (Encoding.ASCII.GetString(part.Body), part.Complete);

    private static Func<byte[], int, int, int> Chunked(string text, int chunk) => Chunked(Encoding.ASCII.GetBytes(text), chunk);

    // A reader that hands out at most `chunk` bytes per call, as a network stream may.
    private static Func<byte[], int, int, int> Chunked(byte[] bytes, int chunk)
    {
        int at = 0;
        return (buffer, offset, count) =>
        {
            int n = Math.Min(Math.Min(chunk, count), bytes.Length - at);
            Array.Copy(bytes, at, buffer, offset, n);
            at += n;
            return n;
        };
    }
}
