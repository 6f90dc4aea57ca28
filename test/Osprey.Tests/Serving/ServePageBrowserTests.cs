using System.Diagnostics;
using System.Text.RegularExpressions;
using OpenCvSharp;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using Osprey.Serving;
using Osprey.Tests.Data;
using Osprey.Tests.Sources;

namespace Osprey.Tests.Serving;

/// <summary>
/// The page at <c>/</c> in a real browser: Debian's Chromium, headless, driven by Selenium through the system
/// chromedriver (build/install-deps.sh installs both). Reported as skipped, with the reason, where Chromium cannot run.
/// </summary>
public class ServePageBrowserTests(Xunit.Abstractions.ITestOutputHelper log)
{
    const string Browser = "/usr/bin/chromium", Driver = "/usr/bin/chromedriver";
    static readonly TimeSpan Patience = TimeSpan.FromSeconds(40);

    [SkippableFact]
    public async Task ThePageShowsATilePerStreamWithLiveFramesAndItsFormsAddStreamsAndLoadWeights()
    {
        string dir = DataTestFiles.NewTempDir();
        try
        {
            string a = ServeTestSupport.WriteTinyModel(dir, "a", seed: 1), b = ServeTestSupport.WriteTinyModel(dir, "b", seed: 2);
            var frames = HttpTestServer.JpegFrames(400, 160, 120, step: 0);   // 400 frames 50 ms apart: 20 s of camera each
            using var first = new HttpTestServer(HttpTestServer.Mjpeg(frames, "frame", contentLength: true, interval: TimeSpan.FromMilliseconds(50)));
            using var second = new HttpTestServer(HttpTestServer.Mjpeg(frames, "frame", contentLength: true, interval: TimeSpan.FromMilliseconds(50)));
            await using var scope = await ServerScope.StartAsync(StreamTestSupport.Options(a));
            await StreamTestSupport.Add(scope.Client, first.Root + "front");
            using var browser = StartChromium(Path.Combine(dir, "chromium-profile"));
            browser.Navigate().GoToUrl(scope.Server.Url + "/");
            Assert.Equal("Osprey serve", browser.Title);

            // one tile per stream, its <img> (the MJPEG out) receiving frames
            await Until(browser, "return document.querySelectorAll('.tile').length === 1", "one tile");
            await Until(browser, "const i = document.querySelector('.tile[data-id=\"front\"] img'); return i.naturalWidth === 160 && i.naturalHeight === 120",
                "frames in the front tile");
            // its fps and latency text, polled from /v1/streams, updates
            string stats = Text(browser, ".tile[data-id=\"front\"] .stats");
            await Until(browser, $"const s = document.querySelector('.tile[data-id=\"front\"] .stats').textContent; return s !== {Js(stats)} && / fps · latency \\d+ ms · /.test(s)",
                "the stats text to change");
            stats = Text(browser, ".tile[data-id=\"front\"] .stats");
            log.WriteLine($"front: {stats}");
            var fps = double.Parse(Regex.Match(stats, @"^([\d.]+) fps").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            Assert.InRange(fps, 0.5, 25);                                  // a 20 fps camera, the tiny model at most as fast

            // the form adds a stream: a second tile, with frames
            browser.FindElement(By.Id("add-source")).SendKeys(second.Root + "back");
            browser.FindElement(By.Id("add-button")).Click();
            await Until(browser, "return document.querySelectorAll('.tile').length === 2", "a second tile");
            await Until(browser, "const i = document.querySelector('.tile[data-id=\"back\"] img'); return i.naturalWidth === 160", "frames in the back tile");
            Assert.Contains("added stream back", Text(browser, "#message"));
            Assert.Equal(2, scope.Server.Streams.All.Count);

            // the weights control swaps the model: the version shown changes
            Assert.Equal("v1", Text(browser, "#model-version"));
            browser.FindElement(By.Id("load-model")).SendKeys(b);
            browser.FindElement(By.Id("load-button")).Click();
            await Until(browser, "return document.getElementById('model-version').textContent === 'v2'", "v2 shown");
            Assert.Contains($"serving v2 {b}", Text(browser, "#message"));
            Assert.Equal(2, scope.Server.Models.Current!.Version);

            // more streams than live views (4): the fifth tile waits paused until clicked, which pauses the oldest live one
            var more = Enumerable.Range(0, 3).Select(_ => new HttpTestServer(HttpTestServer.Mjpeg(frames, "frame", contentLength: true,
                interval: TimeSpan.FromMilliseconds(50)))).ToList();
            try
            {
                for (int i = 0; i < more.Count; i++) await StreamTestSupport.Add(scope.Client, more[i].Root + $"cam{i}");
                await Until(browser, "return document.querySelectorAll('.tile').length === 5", "five tiles");
                Assert.Equal(new[] { "front", "back", "cam0", "cam1" }, LiveTiles(browser));
                Assert.True(browser.FindElement(By.CssSelector(".tile[data-id=\"cam2\"] .paused")).Displayed);
                browser.FindElement(By.CssSelector(".tile[data-id=\"cam2\"] .view")).Click();
                await Until(browser, "const i = document.querySelector('.tile[data-id=\"cam2\"] img'); return i.naturalWidth === 160", "frames in the clicked tile");
                Assert.Equal(new[] { "back", "cam0", "cam1", "cam2" }, LiveTiles(browser));
                Assert.True(browser.FindElement(By.CssSelector(".tile[data-id=\"front\"] .paused")).Displayed);
                AssertTilesShowPictures(browser, Path.Combine(Path.GetTempPath(), "osprey-serve-page.png"));
            }
            finally
            {
                foreach (var camera in more) camera.Dispose();
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    // The ids of the tiles whose image is the stream's MJPEG out, in the page's order.
    static string[] LiveTiles(ChromeDriver browser) => browser.FindElements(By.CssSelector(".tile"))
        .Where(t => IsLive(t.FindElement(By.TagName("img")))).Select(t => t.GetDomAttribute("data-id") ?? "").ToArray();

    static bool IsLive(IWebElement image) => image.GetDomProperty("src")?.EndsWith("/mjpeg", StringComparison.Ordinal) == true;

    // The screenshot's live tile images are pictures (the camera's frame with boxes), not blank.
    void AssertTilesShowPictures(ChromeDriver browser, string path)
    {
        browser.GetScreenshot().SaveAsFile(path);
        log.WriteLine($"screenshot: {path}");
        using var shot = Cv2.ImRead(path, ImreadModes.Color);
        var live = browser.FindElements(By.CssSelector(".tile img")).Where(IsLive).ToList();
        Assert.Equal(4, live.Count);
        foreach (var image in live)
        {
            var (location, size) = (image.Location, image.Size);
            var rect = new Rect(location.X, location.Y, size.Width, size.Height).Intersect(new Rect(0, 0, shot.Width, shot.Height));
            Assert.True(rect.Width > 50 && rect.Height > 50, $"tile image at {rect} is not on the screenshot");
            using var tile = new Mat(shot, rect);
            Cv2.MeanStdDev(tile, out _, out var deviation);
            Assert.True(deviation.Val0 + deviation.Val1 + deviation.Val2 > 30, $"the tile image at {rect} is blank (σ {deviation.Val0:0.0}, {deviation.Val1:0.0}, {deviation.Val2:0.0})");
        }
    }

    static ChromeDriver StartChromium(string profile)
    {
        Skip.IfNot(File.Exists(Browser), $"{Browser} is not installed (build/install-deps.sh installs chromium)");
        Skip.IfNot(File.Exists(Driver), $"{Driver} is not installed (build/install-deps.sh installs chromium-driver)");
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(Driver)!, Path.GetFileName(Driver));
        service.SuppressInitialDiagnosticInformation = true;
        service.HideCommandPromptWindow = true;
        var options = new ChromeOptions { BinaryLocation = Browser };
        // root in a container: no sandbox; a small /dev/shm: no shared memory for the renderer
        options.AddArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000",
            "--user-data-dir=" + profile);
        try
        {
            return new ChromeDriver(service, options, TimeSpan.FromSeconds(90));
        }
        catch (Exception e) when (e is WebDriverException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            service.Dispose();
            throw new SkipException($"chromium could not be started headless through {Driver}: {e.Message}");
        }
    }

    static async Task Until(IJavaScriptExecutor browser, string script, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!(browser.ExecuteScript(script) is true))
        {
            Assert.True(clock.Elapsed < Patience, $"the page: no {what} within {Patience.TotalSeconds:0} s; message: " +
                browser.ExecuteScript("return document.getElementById('message').textContent"));
            await Task.Delay(100);
        }
    }

    static string Text(ISearchContext browser, string selector) => browser.FindElement(By.CssSelector(selector)).Text;

    static string Js(string text) => System.Text.Json.JsonSerializer.Serialize(text);
}
