<?php
const PLUGIN_MARKER = 'v1.0.0';
